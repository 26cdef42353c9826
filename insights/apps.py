from django.apps import AppConfig


class InsightsConfig(AppConfig):
    name = "insights"
    verbose_name = "Insights: agreement, dashboards, adjudication"

    def ready(self) -> None:
        from annotate.signals import judgments_changed
        from insights.dashboard import on_judgments_changed
        from projects.api import api

        judgments_changed.connect(on_judgments_changed, dispatch_uid="insights.dashboard")

        from insights import api as insights_api

        api.add_router("", insights_api.router)
