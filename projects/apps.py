from django.apps import AppConfig


class ProjectsConfig(AppConfig):
    name = "projects"
    verbose_name = "Projects and people"

    def ready(self) -> None:
        from projects import accounts, ws_session  # noqa: F401 - signals: one-time passwords at login; websockets at logout
