"""Every websocket route of every app, in one list for the ASGI router."""

from __future__ import annotations

from django.urls import path

from annotate.consumers import ProjectEventsConsumer
from annotate.consumers_dashboard import DashboardConsumer
from rewardtrain.consumers import RunProgressConsumer

websocket_urlpatterns: list = [
    path("ws/projects/<slug:slug>/", ProjectEventsConsumer.as_asgi()),
    path("ws/projects/<slug:slug>/dashboard/", DashboardConsumer.as_asgi()),
    path("ws/runs/<int:run_id>/", RunProgressConsumer.as_asgi()),
]
