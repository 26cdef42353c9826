from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_safe

from projects.access import get_project_for_user, is_admin, projects_for_user
from projects.accounts import SESSION_FLAG
from projects.models import Membership
from projects.services import may_create_projects


@login_required
@require_safe
def home(request: HttpRequest) -> HttpResponse:
    if request.session.get(SESSION_FLAG):
        return redirect("password_change")  # logged in with a one-time password: choose one first
    projects = projects_for_user(request.user).order_by("name")
    roles = dict(
        Membership.objects.filter(user=request.user, is_active=True).values_list("project_id", "role")
    )
    admin = is_admin(request.user)
    rows = [(p, "admin" if admin else roles.get(p.pk)) for p in projects]
    researcher = admin or Membership.Role.RESEARCHER in roles.values()
    return render(
        request,
        "projects/home.html",
        {
            "rows": rows,
            "is_admin": admin,
            "is_researcher": researcher,
            "can_create": may_create_projects(request.user),
        },
    )


@login_required
@require_safe
def project_detail(request: HttpRequest, slug: str) -> HttpResponse:
    project, role = get_project_for_user(request.user, slug)
    counts = {
        "items": project.items.filter(deleted_at__isnull=True).count(),
        "comparisons": project.comparisons.filter(deleted_at__isnull=True).count(),
        "judgments": project.judgments.count(),
    }
    return render(
        request, "projects/project_detail.html", {"project": project, "role": role, "counts": counts}
    )


@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness for load balancers and compose: the process answers and the database responds."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"ok": True})
