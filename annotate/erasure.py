"""Soft deletion of projects and items, and erasure of one person's identity and free text in a project.

Deletion is soft (`deleted_at`): pages, queues and new snapshots stop seeing the rows, while snapshots keep
pointing at them (SnapshotPair → Comparison is PROTECT) so old snapshots still export and retrain. Frozen
snapshots cannot be changed or deleted at all (the database refuses it, curation/triggers.py), so there is no
hard deletion of a project that has one.

Erasure and frozen snapshots: a snapshot holds comparisons, sides, margins and counts, never a name, a login or
free text, so erasing a person leaves every frozen snapshot (and its content hash) as it is, their votes in it
counting as the anonymous contribution they now are. What a snapshot's `raw` export writes about a person is
read from the live judgments at export time, so every export made after the erasure carries the pseudonym and
no justification; export files written before it are not rewritten (they expire with their download links).
Deleting a login account sets a snapshot's `created_by` to NULL, the one change the database allows.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable

from django.db import transaction
from django.db.models import Q, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from annotate.models import (
    Assignment,
    Comparison,
    Draft,
    Item,
    Judgment,
    JudgmentRevision,
    Ranking,
    RankingRevision,
)
from projects.models import Annotator, AuditEvent, Membership, Project

FROZEN_SNAPSHOTS = (
    "unchanged: frozen snapshots hold no name or free text; their raw exports from now on carry the pseudonym"
)


class ErasureError(ValueError):
    pass


def _audit(actor, action: str, project: Project, target_type: str, target_id: str, data: dict) -> None:
    user = actor if actor is not None and getattr(actor, "is_authenticated", False) else None
    AuditEvent.objects.create(
        actor=user,
        actor_name=user.get_username() if user else "",
        action=action,
        project=project,
        target_type=target_type,
        target_id=target_id,
        data=data,
    )


def project_soft_delete(*, project: Project, actor=None) -> None:
    """Hide a project with its items and comparisons; nothing is removed from the database."""
    now = timezone.now()
    with transaction.atomic():
        Project.objects.filter(pk=project.pk, deleted_at__isnull=True).update(deleted_at=now)
        items = Item.objects.filter(project=project, deleted_at__isnull=True).update(deleted_at=now)
        comparisons = Comparison.objects.filter(project=project, deleted_at__isnull=True).update(
            deleted_at=now
        )
        _audit(
            actor,
            "project.delete",
            project,
            "project",
            str(project.pk),
            {"items": items, "comparisons": comparisons},
        )
    project.refresh_from_db()


def items_soft_delete(*, project: Project, item_ids: Iterable[int], actor=None) -> int:
    """Hide items of `project` and their comparisons; returns how many items were hidden."""
    ids = sorted(set(item_ids))
    now = timezone.now()
    with transaction.atomic():
        n = Item.objects.filter(project=project, pk__in=ids, deleted_at__isnull=True).update(deleted_at=now)
        comparisons = Comparison.objects.filter(
            project=project, item_id__in=ids, deleted_at__isnull=True
        ).update(deleted_at=now)
        _audit(
            actor,
            "items.delete",
            project,
            "item",
            ",".join(map(str, ids))[:60],
            {"items": ids, "comparisons": comparisons},
        )
    return n


def _pseudonym(project: Project) -> str:
    while True:
        name = f"erased-{secrets.token_hex(6)}"
        if not Annotator.objects.filter(project=project, name=name).exists():
            return name


def _scrub(value, secret: str, replacement: str):
    if isinstance(value, str):
        return value.replace(secret, replacement)
    if isinstance(value, list):
        return [_scrub(v, secret, replacement) for v in value]
    if isinstance(value, dict):
        return {_scrub(k, secret, replacement): _scrub(v, secret, replacement) for k, v in value.items()}
    return value


def annotator_erase(
    *, project: Project, annotator_name: str | None = None, username: str | None = None, actor=None
) -> Annotator:
    """Remove one person's identity and free text from `project`; their votes stay, anonymous.

    The annotator gets a random pseudonym, loses its login link and is marked erased; justifications are
    blanked on their judgments, rankings and every revision, skip reasons cleared, drafts deleted, their membership of
    the project removed, and the project's audit events that name them rewritten. The erasure itself is an
    audit event that does not carry the name, and says what happened to frozen snapshots (nothing: see the
    module's docstring). (Their login account, if any, is managed in the Django admin.)
    """
    if (annotator_name is None) == (username is None):
        raise ErasureError("name exactly one of an annotator name or a username")
    qs = Annotator.objects.select_related("user").filter(project=project)
    annotator = (
        qs.filter(name=annotator_name).first()
        if annotator_name is not None
        else qs.filter(user__username=username).first()
    )
    if annotator is None:
        who = f"annotator {annotator_name!r}" if annotator_name is not None else f"user {username!r}"
        raise ErasureError(f"project {project.slug!r} has no {who}")
    if annotator.erased:
        raise ErasureError("this annotator is already erased")
    user = annotator.user
    secrets_to_remove = {annotator.name}
    if user is not None:
        secrets_to_remove.add(user.get_username())
    pseudonym = _pseudonym(project)
    with transaction.atomic():
        judgments = Judgment.objects.filter(annotator=annotator)
        n_judgments = judgments.update(justification="")
        n_revisions = JudgmentRevision.objects.filter(judgment__annotator=annotator).update(justification="")
        n_rankings = Ranking.objects.filter(annotator=annotator).update(justification="")
        n_revisions += RankingRevision.objects.filter(ranking__annotator=annotator).update(justification="")
        assignments = Assignment.objects.filter(annotator=annotator)
        assignments.exclude(skip_reason="").update(skip_reason="")
        n_drafts, _ = Draft.objects.filter(assignment__annotator=annotator).delete()
        if user is not None:
            Membership.objects.filter(project=project, user=user).delete()
        Annotator.objects.filter(pk=annotator.pk).update(name=pseudonym, user=None, erased=True)
        # Audit events are append-only except for erasure: rewrite the ones of this project naming the person.
        naming = Q(actor_name__in=secrets_to_remove)
        if user is not None:
            naming |= Q(actor=user)
        for secret in secrets_to_remove:
            naming |= Q(data_text__contains=secret)
        events = (
            AuditEvent.objects.filter(project=project)
            .annotate(data_text=Cast("data", TextField()))
            .filter(naming)
        )
        for event in events:
            data = event.data
            for secret in secrets_to_remove:
                data = _scrub(data, secret, pseudonym)
            AuditEvent.objects.filter(pk=event.pk).update(
                actor=None if user is not None and event.actor_id == user.pk else event.actor_id,
                actor_name=pseudonym if event.actor_name in secrets_to_remove else event.actor_name,
                data=data,
            )
        _audit(
            actor,
            "annotator.erase",
            project,
            "annotator",
            str(annotator.pk),
            {
                "pseudonym": pseudonym,
                "judgments": n_judgments,
                "rankings": n_rankings,
                "revisions": n_revisions,
                "drafts": n_drafts,
                "frozen_snapshots": FROZEN_SNAPSHOTS,
            },
        )
    annotator.refresh_from_db()
    return annotator
