"""Every websocket route of every app, in one list for the ASGI router."""

from __future__ import annotations

from django.urls import path

from annotate.consumers import ProjectEventsConsumer

websocket_urlpatterns: list = [
    path("ws/projects/<slug:slug>/", ProjectEventsConsumer.as_asgi()),
]
