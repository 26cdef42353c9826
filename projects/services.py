"""Writes of project settings: create a project and change its settings, each change audited.

The pages and the commands both go through here with a validated ProjectSettingsForm's data.
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from projects.access import is_admin
from projects.models import AuditEvent, Membership, Project
from projects.settings_form import SETTINGS

# Called with (project, {field: [old, new]}) after a settings change commits; upper apps append here from their
# AppConfig.ready() (the workbench tells open pages that the guidelines changed).
settings_listeners: list = []


def may_create_projects(user) -> bool:
    """Admins always; researchers (an active researcher membership anywhere) where the site allows it
    (ARBITER_RESEARCHERS_CREATE_PROJECTS)."""
    if is_admin(user):
        return True
    if not getattr(settings, "ARBITER_RESEARCHERS_CREATE_PROJECTS", False) or not user.is_authenticated:
        return False
    return Membership.objects.filter(user=user, role=Membership.Role.RESEARCHER, is_active=True).exists()


def _jsonable(value):
    return value if isinstance(value, (str, int, float, bool, list, type(None))) else str(value)


def project_settings(project: Project) -> dict:
    """The project's settings as JSON-ready values (what `--json` prints)."""
    return {"id": project.pk, "slug": project.slug} | {
        name: _jsonable(getattr(project, name)) for name in SETTINGS
    }


def _audit(*, actor, action: str, project: Project, actor_name: str = "", **data) -> None:
    AuditEvent.objects.create(
        actor=actor,
        actor_name=actor.get_username() if actor else actor_name,
        action=action,
        project=project,
        target_type="project",
        target_id=str(project.pk),
        data=data,
    )


def project_create(*, data: dict, actor, actor_name: str = "") -> Project:
    """A new project from validated settings (NewProjectForm.cleaned_data). A researcher who creates one
    becomes its researcher."""
    with transaction.atomic():
        project = Project(created_by=actor, slug=data["slug"])
        for name in SETTINGS:
            if name in data:
                setattr(project, name, data[name])
        if project.guidelines:
            project.guidelines_updated_at = timezone.now()
        project.save()
        if actor is not None and not is_admin(actor):
            Membership.objects.create(user=actor, project=project, role=Membership.Role.RESEARCHER)
        _audit(
            actor=actor,
            actor_name=actor_name,
            action="project.created",
            project=project,
            settings=project_settings(project),
        )
    return project


def project_configure(*, project: Project, data: dict, actor, actor_name: str = "") -> dict:
    """Apply validated settings; return {field: [old, new]} of what changed (audited as one event)."""
    with transaction.atomic():
        locked = Project.objects.select_for_update().get(pk=project.pk)
        changes = {}
        for name in SETTINGS:
            if name in data and getattr(locked, name) != data[name]:
                changes[name] = [_jsonable(getattr(locked, name)), _jsonable(data[name])]
                setattr(locked, name, data[name])
        if not changes:
            return {}
        fields = list(changes)
        if "guidelines" in changes:
            locked.guidelines_updated_at = timezone.now()
            fields.append("guidelines_updated_at")
        locked.save(update_fields=fields)
        _audit(
            actor=actor, actor_name=actor_name, action="project.configured", project=locked, changes=changes
        )
        for listener in settings_listeners:
            listener(locked, changes)
    for name in fields:
        setattr(project, name, getattr(locked, name))
    return changes
