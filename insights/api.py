"""The figures part of the JSON API (added to `projects.api.api`)."""

from __future__ import annotations

from typing import Any

from ninja import Router, Schema, Status

from insights.dashboard import DEBOUNCE_SECONDS, cached_dashboard, request_recompute
from projects.api import RESEARCH, project_for

router = Router()


class Computing(Schema):
    project: str
    status: str
    retry_after_seconds: float
    detail: str


@router.get("/projects/{slug}/agreement", response={200: dict[str, Any], 202: Computing}, tags=["figures"])
def get_agreement(request, slug: str):
    """The dashboard's agreement figures, exactly as the dashboard shows them: one computation
    (`insights.agreement.project_figures`, the one `manage.py agreement --json` prints and the dataset card
    uses on a snapshot's comparisons). Every question the dashboard shows (overall, preference, helpfulness,
    harmlessness, safety, each harm category) with every coefficient and its bootstrap 95 % interval; source
    labels vs the crowd; annotator pairs; per-annotator figures. Crowd judgments only: source labels and
    comparisons with a gold answer are left out. The figures are recomputed in the background after each
    judgment (`computed_at` says when); when there are none yet, the request schedules that recompute and
    answers 202: ask again shortly."""
    project = project_for(request, slug, roles=RESEARCH)
    cached = cached_dashboard(project)
    if cached is None:
        request_recompute(project.pk)
        return Status(
            202,
            {
                "project": project.slug,
                "status": "computing",
                "retry_after_seconds": DEBOUNCE_SECONDS,
                "detail": "The figures are being computed in the background; ask again shortly.",
            },
        )
    return Status(200, {"project": project.slug, "computed_at": cached["computed_at"], **cached["agreement"]})
