from django.apps import AppConfig


class ProjectsConfig(AppConfig):
    name = "projects"
    verbose_name = "Projects and people"

    def ready(self) -> None:
        from projects import ws_session  # noqa: F401 - closes a user's websockets at logout
