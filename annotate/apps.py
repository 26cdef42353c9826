from django.apps import AppConfig


class AnnotateConfig(AppConfig):
    name = "annotate"
    verbose_name = "Annotation"

    def ready(self) -> None:
        from annotate import api as labelling_api
        from projects.api import api

        api.add_router("", labelling_api.router)

        from annotate.services import project_settings_changed  # noqa: PLC0415 - apps are loaded now
        from projects.services import settings_listeners  # noqa: PLC0415

        if project_settings_changed not in settings_listeners:
            settings_listeners.append(project_settings_changed)
