"""Reads for the rubric pages: who may author, the scores and rubric-vs-preference figures of a rubric."""

from __future__ import annotations

from collections import defaultdict

from django.db.models import F

from projects.access import is_admin
from projects.models import Membership, Project

from .models import CriterionAnswer, Rubric, RubricVersion
from .scoring import JudgedPair, rubric_vs_preference
from .services import scores_for, version_views


def can_author(user) -> bool:
    """Rubrics are global: admins and anyone who is a researcher on at least one live project author them."""
    if not user.is_authenticated:
        return False
    if is_admin(user):
        return True
    return Membership.objects.filter(
        user=user, role=Membership.Role.RESEARCHER, is_active=True, project__deleted_at__isnull=True
    ).exists()


def can_edit(user, rubric: Rubric) -> bool:
    """Who may change a rubric: its author, researchers of a live project it is shared with, and admins.
    Every other author may read it and copy it."""
    if not user.is_authenticated:
        return False
    if is_admin(user) or (rubric.created_by_id is not None and rubric.created_by_id == user.pk):
        return True
    return rubric.shared_with.filter(
        deleted_at__isnull=True,
        memberships__user=user,
        memberships__is_active=True,
        memberships__role=Membership.Role.RESEARCHER,
    ).exists()


def research_projects(user):
    """Projects whose labels this user may read on a rubric page (researcher there, or admin)."""
    qs = Project.objects.filter(deleted_at__isnull=True)
    if is_admin(user):
        return qs
    return qs.filter(
        memberships__user=user, memberships__is_active=True, memberships__role=Membership.Role.RESEARCHER
    ).distinct()


def rubric_results(rubric: Rubric, projects) -> list[dict]:
    """Per version of `rubric` with answers on the latest revision of judgments in `projects`:
    {"version", "rows": [per judgment: scores, choice, agreement], "analysis": RubricVsPreference}."""
    answers = (
        CriterionAnswer.objects.filter(
            version__rubric=rubric,
            revision__judgment__project__in=projects,
            revision__number=F("revision__judgment__revision_count"),
        )
        .select_related(
            "revision__judgment__annotator", "revision__judgment__project", "revision__judgment__comparison"
        )
        .order_by("revision_id")
    )
    by_version: dict[int, dict[int, dict]] = defaultdict(dict)
    for row in answers:
        revisions = by_version[row.version_id]
        entry = revisions.setdefault(row.revision_id, {"revision": row.revision, "a": {}, "b": {}})
        entry[row.side][row.criterion_key] = row.answer
    results = []
    versions = {v.pk: v for v in RubricVersion.objects.filter(pk__in=by_version).select_related("rubric")}
    for version_id in sorted(by_version, key=lambda pk: versions[pk].number):
        version = versions[version_id]
        checklist = version_views(version)
        rows = []
        pairs = []
        for entry in by_version[version_id].values():
            revision = entry["revision"]
            judgment = revision.judgment
            scores = scores_for(checklist, entry, judgment.project)
            score_a, score_b = scores["a"]["score"], scores["b"]["score"]
            agrees = None  # "yes" | "no" | "tie" (equal or undefined scores) | None (no decisive choice)
            if revision.choice in ("a", "b"):
                if score_a is None or score_b is None or score_a == score_b:
                    agrees = "tie"
                else:
                    agrees = "yes" if (score_a > score_b) == (revision.choice == "a") else "no"
            rows.append(
                {
                    "judgment": judgment,
                    "project": judgment.project,
                    "comparison_id": judgment.comparison_id,
                    "annotator": judgment.annotator.name,
                    "score_a": score_a,
                    "score_b": score_b,
                    "choice": revision.choice,
                    "agrees": agrees,
                }
            )
            if revision.choice:
                pairs.append(JudgedPair(revision.choice, entry["a"], entry["b"]))
        cap = rows[0]["project"].rubric_essential_cap if rows else 0.5
        analysis = rubric_vs_preference([c.scoring() for c in checklist], pairs, essential_cap=cap)
        texts = {c.key: c.text for c in checklist}
        results.append(
            {
                "version": version,
                "rows": rows[-50:],
                "count": len(rows),
                "analysis": analysis,
                "criteria": [(texts[f.key], f) for f in analysis.criteria],
            }
        )
    return results
