"""The token-authenticated JSON API (django-ninja), one `NinjaAPI` for the whole site.

Each app adds its own `Router` in its `AppConfig.ready()` (`projects.api.api.add_router`), so this module knows
no app above it. Schema at /api/openapi.json, docs at /api/docs, both for signed-in users (or a live token) only. Permissions are the pages' (projects.access):
what a user may not see answers 404; no or a bad token 401.
"""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from ninja import NinjaAPI, Schema

from projects.access import get_project_for_user, projects_for_user, role_in
from projects.api_auth import TokenAuth
from projects.models import Project


def signed_in(view):
    """The docs page and the schema: for a signed-in user (session) or a live token; others go to the login
    page (a browser) or get 401 (a script that sent a token that is not live)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.user.is_authenticated:
            return view(request, *args, **kwargs)
        if request.headers.get("Authorization", ""):
            if TokenAuth()(request) is not None:
                return view(request, *args, **kwargs)
            return HttpResponse("A live API token or a signed-in session is needed.", status=401)
        return redirect_to_login(request.get_full_path())

    return wrapper


api = NinjaAPI(
    title="Arbiter API",
    version="1",
    description="Push items, pull snapshots and exports, read agreement and training-run status. "
    "Authenticate with `Authorization: Bearer <token>` (create tokens at /tokens/).",
    auth=TokenAuth(),
    urls_namespace="api",
    docs_decorator=signed_in,
)

RESEARCH = ("admin", "researcher")


class ProjectOut(Schema):
    slug: str
    name: str
    role: str


class Message(Schema):
    detail: str


def project_for(request: HttpRequest, slug: str, roles=("admin", "researcher", "annotator")) -> Project:
    """The live project `slug` if the request's user holds one of `roles` on it; else 404."""
    return get_project_for_user(request.user, slug, roles)[0]


@api.get("/projects", response=list[ProjectOut], tags=["projects"])
def list_projects(request):
    """The live projects the token's user holds a role on."""
    return [
        {"slug": p.slug, "name": p.name, "role": role_in(request.user, p)}
        for p in projects_for_user(request.user).order_by("name")
    ]
