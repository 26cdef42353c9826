"""The margin page: human margins, the active reward model against them, and the disagreement triage list."""

from __future__ import annotations

import copy

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from annotate.models import Comparison
from insights import charts
from projects.access import get_project_for_user

from .margins import cached_margin_figures


@login_required
@require_safe
def margins(request: HttpRequest, slug: str) -> HttpResponse:
    project, _ = get_project_for_user(request.user, slug, roles=("admin", "researcher"))
    figures = copy.deepcopy(cached_margin_figures(project))
    h = figures["human_margin"]["histogram"]
    context = {
        "project": project,
        "figures": figures,
        "human_chart": charts.histogram(h["counts"], h["edges"], label="Human margin per comparison"),
    }
    model = figures["model"]
    if model is not None:
        if model["histogram"]["counts"]:
            context["model_chart"] = charts.histogram(
                model["histogram"]["counts"], model["histogram"]["edges"], label="Model margin per comparison"
            )
        context["reliability_chart"] = charts.reliability_diagram(
            model["calibration"]["bins"], label="Reliability diagram"
        )
    prompts = dict(
        Comparison.objects.filter(pk__in=[t["comparison_id"] for t in figures["triage"]]).values_list(
            "pk", "item__prompt"
        )
    )
    for row in figures["triage"]:
        messages = prompts.get(row["comparison_id"]) or []
        row["prompt"] = messages[-1]["content"] if messages else ""
    return render(request, "rewardtrain/margins.html", context)
