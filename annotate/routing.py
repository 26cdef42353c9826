"""The annotate app's websocket routes (config/routing.py gathers every app's)."""

from __future__ import annotations

from django.urls import path

from annotate.consumers import ProjectEventsConsumer

websocket_urlpatterns = [path("ws/projects/<slug:slug>/", ProjectEventsConsumer.as_asgi())]
