from django.apps import AppConfig


class AnnotateConfig(AppConfig):
    name = "annotate"
    verbose_name = "Annotation"

    def ready(self) -> None:
        from . import (
            worker,  # noqa: F401 - connects the worker heartbeat signals
            ws_session,  # noqa: F401 - closes a user's websockets at logout
        )
