from django.apps import AppConfig


class ProjectsConfig(AppConfig):
    name = "projects"
    verbose_name = "Projects and people"

    def ready(self) -> None:
        from projects import checks, ws_session  # noqa: F401 - system checks; closes websockets at logout
