"""Admins manage who is on a project: invite (an existing login or a new one), set the role, deactivate.

Every change writes an AuditEvent `membership.*`.
"""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction

from projects.models import Annotator, AuditEvent, Membership, Project


class PeopleError(ValueError):
    pass


def annotator_for(*, project: Project, user) -> Annotator:
    """The crowd Annotator row of a login within a project, created on first use (name = username)."""
    found = Annotator.objects.filter(project=project, user=user).first()
    if found is not None:
        return found
    name = user.get_username()
    if Annotator.objects.filter(project=project, name=name).exists():
        # An imported annotator already carries that name: imported names are never matched to logins.
        name = f"{name} (user {user.pk})"
    try:
        with transaction.atomic():
            return Annotator.objects.create(project=project, user=user, name=name)
    except IntegrityError:
        return Annotator.objects.get(project=project, user=user)


def _audit(*, actor, action: str, membership: Membership, **data) -> None:
    AuditEvent.objects.create(
        actor=actor,
        actor_name=actor.get_username() if actor else "",
        action=action,
        project=membership.project,
        target_type="membership",
        target_id=str(membership.pk),
        data={"user": membership.user.get_username(), "role": membership.role, **data},
    )


def membership_invite(
    *, project: Project, username: str, role: str, actor, create: bool = False, email: str = ""
) -> tuple[Membership, str | None]:
    """Add `username` to `project` with `role`. With `create`, make the login first and return its one-time
    password (shown once, never stored in the clear)."""
    User = get_user_model()  # noqa: N806
    username = username.strip()
    if role not in Membership.Role.values:
        raise PeopleError(f"unknown role {role!r}")
    with transaction.atomic():
        password = None
        if create:
            if User.objects.filter(username__iexact=username).exists():
                raise PeopleError(f"a user named {username!r} already exists; invite them instead")
            password = secrets.token_urlsafe(12)
            user = User.objects.create_user(username=username, email=email.strip(), password=password)
            AuditEvent.objects.create(
                actor=actor,
                actor_name=actor.get_username(),
                action="user.created",
                project=project,
                target_type="user",
                target_id=str(user.pk),
                data={"user": username},
            )
        else:
            user = User.objects.filter(username=username).first()
            if user is None:
                raise PeopleError(f"no user named {username!r}")
        membership, created = Membership.objects.get_or_create(
            user=user, project=project, defaults={"role": role}
        )
        if not created:
            if membership.is_active and membership.role == role:
                raise PeopleError(f"{username} is already a {role} on this project")
            membership.role, membership.is_active = role, True
            membership.save(update_fields=["role", "is_active"])
        _audit(actor=actor, action="membership.invited", membership=membership)
    return membership, password


def membership_set_role(*, membership: Membership, role: str, actor) -> Membership:
    if role not in Membership.Role.values:
        raise PeopleError(f"unknown role {role!r}")
    with transaction.atomic():
        old = membership.role
        membership.role = role
        membership.save(update_fields=["role"])
        _audit(actor=actor, action="membership.role_changed", membership=membership, old_role=old)
    return membership


def membership_set_active(*, membership: Membership, active: bool, actor) -> Membership:
    with transaction.atomic():
        membership.is_active = active
        membership.save(update_fields=["is_active"])
        action = "membership.reactivated" if active else "membership.deactivated"
        _audit(actor=actor, action=action, membership=membership)
    return membership


def membership_set_model_judge(*, membership: Membership, model_judge: bool, actor) -> Annotator:
    """Mark the member's annotator of the project as a model judge (kind `model`) or a human (`crowd`).

    A model judge labels like anyone (the workbench, or the labelling API with its token), but its judgments
    never count toward k and the dashboards keep it out of the human figures. Refused once the annotator has
    judgments: their k was counted (or not) by the kind they were given under."""
    kind = Annotator.Kind.MODEL if model_judge else Annotator.Kind.CROWD
    with transaction.atomic():
        annotator = annotator_for(project=membership.project, user=membership.user)
        annotator = Annotator.objects.select_for_update().get(pk=annotator.pk)
        if annotator.kind == kind:
            return annotator
        if annotator.judgments.exists():
            raise PeopleError(
                f"{membership.user.get_username()} has judgments on this project already: mark a model judge "
                "before it labels"
            )
        old = annotator.kind
        annotator.kind = kind
        annotator.save(update_fields=["kind"])
        _audit(
            actor=actor, action="membership.annotator_kind", membership=membership, old_kind=old, kind=kind
        )
    return annotator
