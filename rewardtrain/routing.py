"""The rewardtrain app's websocket routes (config/routing.py gathers every app's)."""

from __future__ import annotations

from django.urls import path

from rewardtrain.consumers import RunProgressConsumer

websocket_urlpatterns = [path("ws/runs/<int:run_id>/", RunProgressConsumer.as_asgi())]
