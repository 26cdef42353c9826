from django.apps import AppConfig


class AnnotateConfig(AppConfig):
    name = "annotate"
    verbose_name = "Annotation"

    def ready(self) -> None:
        from annotate import api as labelling_api
        from projects.api import api

        api.add_router("", labelling_api.router)
