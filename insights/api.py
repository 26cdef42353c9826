"""The figures part of the JSON API (added to `projects.api.api`)."""

from __future__ import annotations

from typing import Any

from ninja import Router, Status

from insights.agreement import agreement_figures_for
from insights.consensus import live_comparisons
from projects.api import RESEARCH, project_for

router = Router()


@router.get("/projects/{slug}/agreement", response={200: dict[str, Any]}, tags=["figures"])
def get_agreement(request, slug: str):
    """Crowd agreement per question with bootstrap 95 % intervals (live comparisons, source labels and
    gold-item judgments left out)."""
    project = project_for(request, slug, roles=RESEARCH)
    figures = agreement_figures_for(live_comparisons(project).values("id"))
    return Status(200, {"project": project.slug, "questions": figures or {}})
