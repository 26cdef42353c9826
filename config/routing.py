"""Every websocket route of every app, in one list for the ASGI router: each app's `routing` module is its
public entry point for websockets, as `urls` is for HTTP (import-linter allows config these imports alone)."""

from __future__ import annotations

from annotate import routing as annotate_routing
from insights import routing as insights_routing
from rewardtrain import routing as rewardtrain_routing

websocket_urlpatterns: list = [
    *annotate_routing.websocket_urlpatterns,
    *insights_routing.websocket_urlpatterns,
    *rewardtrain_routing.websocket_urlpatterns,
]
