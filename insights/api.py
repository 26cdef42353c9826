"""The figures part of the JSON API (added to `projects.api.api`)."""

from __future__ import annotations

from typing import Any

from ninja import Router, Status

from insights.agreement import project_figures
from insights.dashboard import cached_dashboard
from projects.api import RESEARCH, project_for

router = Router()


@router.get("/projects/{slug}/agreement", response={200: dict[str, Any]}, tags=["figures"])
def get_agreement(request, slug: str):
    """The dashboard's agreement figures, from the same computation (`insights.agreement.project_figures`,
    the one `manage.py agreement --json` prints): per question with bootstrap 95 % intervals, source labels and
    gold comparisons left out. The dashboard's latest figures when it has them (recomputed in the background
    after each judgment; `computed_at` says when), else computed now."""
    project = project_for(request, slug, roles=RESEARCH)
    cached = cached_dashboard(project)
    if cached is not None:
        figures, computed_at = cached["agreement"], cached["computed_at"]
    else:
        figures, computed_at = project_figures(project), None
    return Status(
        200,
        {
            "project": project.slug,
            "computed_at": computed_at,
            "judgments": figures["judgments"],
            "comparisons": figures["comparisons"],
            "questions": figures["questions"],
            "source_vs_crowd": figures["source_vs_crowd"],
        },
    )
