from django.apps import AppConfig


class CurationConfig(AppConfig):
    name = "curation"
    verbose_name = "Curation: import, snapshots, export"

    def ready(self) -> None:
        from projects.api import api

        from . import api as datasets_api

        api.add_router("", datasets_api.router)
