from django.apps import AppConfig


class DatasetsConfig(AppConfig):
    name = "datasets"
    verbose_name = "Datasets: import, export, snapshots"

    def ready(self) -> None:
        from projects.api import api

        from . import api as datasets_api

        api.add_router("", datasets_api.router)
