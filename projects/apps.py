from django.apps import AppConfig


class ProjectsConfig(AppConfig):
    name = "projects"
    verbose_name = "Projects and people"

    def ready(self) -> None:
        # System checks; one-time passwords at login; websockets closed at logout.
        from projects import accounts, checks, ws_session  # noqa: F401
