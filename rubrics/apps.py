from __future__ import annotations

from django.apps import AppConfig


class RubricsConfig(AppConfig):
    name = "rubrics"

    def ready(self) -> None:
        # Imported here, not at the top: hooks imports models (through services), which Django only allows
        # once the app registry is ready — ready() is the documented place for this.
        from . import hooks

        hooks.register()
