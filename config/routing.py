"""Every websocket route of every app, in one list for the ASGI router."""

from __future__ import annotations

from django.urls import path

from rewardtrain.consumers import RunProgressConsumer

websocket_urlpatterns: list = [
    path("ws/runs/<int:run_id>/", RunProgressConsumer.as_asgi()),
]
