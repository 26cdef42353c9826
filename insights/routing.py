"""The insights app's websocket routes (config/routing.py gathers every app's)."""

from __future__ import annotations

from django.urls import path

from insights.consumers import DashboardConsumer

websocket_urlpatterns = [path("ws/projects/<slug:slug>/dashboard/", DashboardConsumer.as_asgi())]
