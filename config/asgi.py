"""ASGI entry point: websockets through Channels (origin-checked, session-authenticated), HTTP through Django's
WSGI handler."""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from a2wsgi import WSGIMiddleware  # noqa: E402

from config.wsgi import application as wsgi_application  # noqa: E402

# HTTP: Django's WSGI handler in a2wsgi's thread pool: the whole request (middleware, view, request signals) in
# one thread call, a download read block by block as it is sent, an upload streamed to the parser. Django's own
# ASGI handler hands every middleware hook to a thread and back (15 hand-offs a request here) and reads a file
# download whole into memory before sending it. Production serves pages and JSON with gunicorn (config/wsgi.py,
# measured: less CPU a request); this serves HTTP for `make run`, the tests and anyone running uvicorn alone.
django_asgi_app = WSGIMiddleware(wsgi_application, workers=16)

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402

from config.overload import InflightLimitMiddleware, LoginGateMiddleware  # noqa: E402
from config.routing import websocket_urlpatterns  # noqa: E402
from infra.uploads import BodyLimitMiddleware  # noqa: E402

application = ProtocolTypeRouter(
    {
        # Over the in-flight limit: 503 before Django; uploads over the size limit: 413 before buffering; password
        # logins past ARBITER_PASSWORD_CHECKS wait on the event loop, not on the request threads.
        "http": InflightLimitMiddleware(
            LoginGateMiddleware(
                BodyLimitMiddleware(django_asgi_app),
                settings.ARBITER_PASSWORD_CHECKS,
                settings.ARBITER_LOGIN_PATHS,
                settings.ARBITER_LOGIN_PAGES,
            ),
            settings.ARBITER_MAX_INFLIGHT,
        ),
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
