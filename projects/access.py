"""Who may touch what. Every view goes through these; what a user may not see answers 404."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.http import Http404

from projects.models import Membership, Project

ADMIN_GROUP = "admins"


def is_admin(user: AbstractBaseUser | AnonymousUser) -> bool:
    if not user.is_authenticated or not user.is_active:
        return False
    if user.is_superuser:
        return True
    cached = getattr(user, "arbiter_is_admin", None)  # once per request's user
    if cached is None:
        cached = user.groups.filter(name=ADMIN_GROUP).exists()
        user.arbiter_is_admin = cached
    return cached


def role_in(user: AbstractBaseUser | AnonymousUser, project: Project) -> str | None:
    """'admin', 'researcher', 'annotator', or None for an outsider."""
    if is_admin(user):
        return "admin"
    if not user.is_authenticated:
        return None
    membership = (
        Membership.objects.filter(user=user, project=project, is_active=True)
        .values_list("role", flat=True)
        .first()
    )
    return membership


def member_project(user, slug: str) -> Project | None:
    """The live project `slug` when `user` holds an active membership on it (any role), else None."""
    if not user.is_authenticated:
        return None
    found = list(  # the slug is unique: no ORDER BY (first()'s cost more to compile than the rest)
        Project.objects.filter(
            slug=slug, deleted_at__isnull=True, memberships__user=user, memberships__is_active=True
        )
    )
    return found[0] if found else None


def get_project_for_user(
    user, slug: str, roles: tuple[str, ...] = ("admin", "researcher", "annotator")
) -> tuple[Project, str]:
    """The live project `slug` and the user's role on it, or 404 when the user holds none of `roles`."""
    project = Project.objects.filter(slug=slug, deleted_at__isnull=True).first()
    if project is None:
        raise Http404("No such project")
    role = role_in(user, project)
    if role is None or role not in roles:
        raise Http404("No such project")
    return project, role


def projects_for_user(user):
    qs = Project.objects.filter(deleted_at__isnull=True)
    if is_admin(user):
        return qs
    return qs.filter(memberships__user=user, memberships__is_active=True).distinct()
