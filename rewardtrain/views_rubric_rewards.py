"""The rubric rewards page of a project: per published rubric version, how reliable each criterion is, how
it relates to the human choices, which criteria explain contested comparisons, and the fitted rubric rewards
(started here, fitted by a Celery job, downloadable as parameters for `rubric_reward_fn.RubricReward`).

Researchers and admins of the project only; everyone else gets 404.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from curation.exporters import ExportError, can_export, start_export_job
from curation.models import DatasetSnapshot
from insights import charts
from insights.dashboard import computed_key
from insights.rubric_criteria import criterion_figures, disagreement_figures, load_rows
from projects.access import get_project_for_user
from projects.models import Project
from rubrics.models import CriterionAnswer, RubricVersion
from rubrics.services import version_views

from . import rubric_fit
from .models import ModelVersion, RubricRewardFit, RubricRewardJob
from .rubric_reward import RubricRewardError, fit_parameters, start_fit_job

STAFF = ("admin", "researcher")
CACHE_SECONDS = 60


def _project(request: HttpRequest, slug: str) -> Project:
    return get_project_for_user(request.user, slug, STAFF)[0]


def _versions_in(project: Project):
    """Published rubric versions with answers on the project's judgments or fits on it, and the pinned one."""
    used = (
        CriterionAnswer.objects.filter(revision__judgment__project=project, version__isnull=False)
        .values("version_id")
        .distinct()
    )
    qs = RubricVersion.objects.filter(status=RubricVersion.Status.PUBLISHED).select_related("rubric")
    pinned = [project.rubric_version_id] if project.rubric_version_id else []
    fitted = RubricRewardFit.objects.filter(project=project).values("rubric_version_id")
    return qs.filter(pk__in=used) | qs.filter(pk__in=pinned) | qs.filter(pk__in=fitted)


class FitForm(forms.Form):
    snapshot = forms.TypedChoiceField(coerce=int)
    model = forms.TypedChoiceField(coerce=int, empty_value=None, required=False)
    c = forms.FloatField(
        min_value=1e-6, max_value=1e6, initial=rubric_fit.DEFAULT_C, label="C (inverse L2 strength)"
    )

    def __init__(self, *args, project: Project, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["snapshot"].choices = [
            (
                s.pk,
                f"#{s.pk} {s.name} · {s.aggregation}/{s.axis} · {s.pair_count} pairs · {s.content_hash[:12]}",
            )
            for s in project.snapshots.all()[:100]
        ]
        self.fields["model"].choices = [("", "No reward model: criteria only")] + [
            (m.pk, f"Model {m.pk}{' (active)' if m.is_active else ''} · {m.created_at:%Y-%m-%d %H:%M}")
            for m in ModelVersion.objects.filter(project=project, kind=ModelVersion.Kind.REWARD)[:100]
        ]


@login_required
@require_safe
def rubric_rewards(request: HttpRequest, slug: str) -> HttpResponse:
    project = _project(request, slug)
    versions = list(_versions_in(project).order_by("rubric__name", "number"))
    fits = dict(
        RubricRewardFit.objects.filter(project=project)
        .values("rubric_version_id")
        .annotate(n=Count("id"))
        .values_list("rubric_version_id", "n")
    )
    if len(versions) == 1:
        return redirect(
            "rewardtrain:rubric_reward_version", slug=project.slug, rubric_version_id=versions[0].pk
        )
    return render(
        request,
        "rewardtrain/rubric_rewards_index.html",
        {"project": project, "versions": [(v, fits.get(v.pk, 0)) for v in versions]},
    )


def cached_criteria_figures(project: Project, version: RubricVersion, checklist) -> dict:
    """The per-criterion and disagreement figures, cached like the margin page's: until the dashboard's
    figures are recomputed (new judgments) or a minute passes."""
    key = f"rubric-criteria:{project.pk}:{version.pk}:{cache.get(computed_key(project.pk))}"
    figures = cache.get(key)
    if figures is None:
        scoring = [c.scoring() for c in checklist]
        rows = load_rows(project, version)
        figures = {
            "figures": criterion_figures(rows, scoring),
            "disagreement": disagreement_figures(rows, scoring),
            "judgments": len({(r.comparison_id, r.annotator_id) for r in rows}),
        }
        texts = {c.key: c.text for c in checklist}
        for f in figures["figures"]:
            f["text"] = texts.get(f["key"], "")
        cache.set(key, figures, CACHE_SECONDS)
    return figures


def _criteria_charts(figures: list[dict], texts: dict[str, str]) -> dict:
    def name(f: dict) -> str:
        return f"{f['key']} · {texts.get(f['key'], '')[:36]}"

    return {
        "alpha_chart": charts.interval_chart(
            [(name(f), f["alpha"], f["alpha_ci"]) for f in figures],
            label="Krippendorff's alpha per criterion (yes / no / n.a.), 95% bootstrap interval",
        ),
        "ac1_chart": charts.interval_chart(
            [(name(f), f["ac1"], None) for f in figures], label="Gwet's AC1 per criterion"
        ),
        "rate_chart": charts.bar_chart(
            [(f["key"], f["rate"] or 0.0) for f in figures],
            label="Share of judgments where the criterion separates the two responses",
        ),
        "predicts_chart": charts.interval_chart(
            [(name(f), f["predicts"], f["predicts_ci"]) for f in figures],
            label="When it separates them: share favouring the chosen response, 95% Wilson interval",
            lo=0.0,
        ),
    }


def _fit_charts(fit: RubricRewardFit, texts: dict[str, str]) -> dict:
    results = fit.results
    accuracy = results["accuracy"]
    out = {
        "accuracy_chart": charts.interval_chart(
            [(a["name"], a["accuracy"], a["ci"]) for m in rubric_fit.METHODS if (a := accuracy.get(m))],
            label="Cross-validated accuracy against the snapshot's choices, 95% item-bootstrap interval",
            lo=0.3,
        ),
    }
    rows = results["combined_weights"] or results["weights"]
    out["weights_chart"] = charts.interval_chart(
        [
            (f"{r['key']} · {texts.get(r['key'], 'reward model margin')[:36]}", r["weight"], r["ci"])
            for r in rows
        ],
        label="Fitted weights (log-odds per unit of v), 95% item-bootstrap interval",
        lo=-1.0,
    )
    return out


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def rubric_reward_version(request: HttpRequest, slug: str, rubric_version_id: int) -> HttpResponse:
    project = _project(request, slug)
    version = get_object_or_404(_versions_in(project), pk=rubric_version_id)
    form = FitForm(request.POST or None, project=project)
    if request.method == "POST":
        if form.is_valid():
            snapshot = get_object_or_404(DatasetSnapshot, pk=form.cleaned_data["snapshot"], project=project)
            model_id = form.cleaned_data["model"]
            model = get_object_or_404(ModelVersion, pk=model_id, project=project) if model_id else None
            try:
                start_fit_job(
                    project=project,
                    version=version,
                    snapshot=snapshot,
                    model=model,
                    c=form.cleaned_data["c"],
                    actor=request.user,
                )
            except RubricRewardError as exc:
                messages.error(request, str(exc))
            else:
                messages.success(request, "Fit queued: it runs on the cpu queue; reload to see it.")
            return redirect(request.path)
        for field, errors in form.errors.items():
            messages.error(request, f"{field}: {' '.join(errors)}")
        return redirect(request.path)
    checklist = version_views(version)
    texts = {c.key: c.text for c in checklist}
    criteria = cached_criteria_figures(project, version, checklist)
    figures, disagreement = criteria["figures"], criteria["disagreement"]
    fits = list(
        RubricRewardFit.objects.filter(project=project, rubric_version=version).select_related(
            "snapshot", "model_version"
        )
    )
    chosen = request.GET.get("fit")
    fit = next((f for f in fits if chosen and str(f.pk) == chosen), fits[0] if fits else None)
    context = {
        "project": project,
        "version": version,
        "figures": figures,
        "judgments": criteria["judgments"],
        "disagreement": disagreement,
        "disagreement_chart": charts.interval_chart(
            [
                (f"{f['key']} · {texts.get(f['key'], '')[:36]}", f["mean_gap"], f["mean_gap_ci"])
                for f in disagreement["criteria"]
            ],
            label="Mean gap between the camps of contested comparisons, 95% bootstrap interval",
            lo=-0.5,
        ),
        "fits": fits,
        "fit": fit,
        "jobs": RubricRewardJob.objects.filter(project=project, rubric_version=version)
        .exclude(status=RubricRewardJob.Status.SUCCEEDED)
        .order_by("-created_at")[:5],
        "form": form,
        "texts": texts,
        "may_export": can_export(request.user, project),
        **_criteria_charts(figures, texts),
    }
    if fit is not None:
        context.update(_fit_charts(fit, texts))
        context["fit_rows"] = _fit_rows(fit, checklist)
        # In a fixed order: PostgreSQL's jsonb keeps an object's keys in an order of its own.
        accuracy = fit.results["accuracy"]
        context["accuracy_rows"] = [(m, accuracy[m]) for m in rubric_fit.METHODS if m in accuracy]
        differences = fit.results["differences"]
        context["difference_rows"] = [(k, differences[k]) for k in rubric_fit.DIFFERENCES if k in differences]
        context["model_trained_here"] = (
            fit.model_version is not None and fit.model_version.snapshot_hash == fit.snapshot_hash
        )
    return render(request, "rewardtrain/rubric_rewards.html", context)


def _fit_rows(fit: RubricRewardFit, checklist) -> list[dict]:
    """Per criterion: hand-set weight, fitted weight (criteria only) and in the combination, with intervals."""
    alone = {r["key"]: r for r in fit.results["weights"]}
    combined = {r["key"]: r for r in fit.results["combined_weights"] or []}
    out = []
    for c in checklist:
        row = {"key": c.key, "text": c.text, "category": c.category, "hand": c.weight}
        row["alone"] = alone.get(c.key)
        row["combined"] = combined.get(c.key)
        used = row["combined"] or row["alone"]
        row["sign_differs"] = (
            used is not None and used["weight"] * c.weight < 0 and not _spans_zero(used["ci"])
        )
        out.append(row)
    if "model" in combined:
        out.append(
            {"key": "model", "text": "reward model margin", "hand": None, "combined": combined["model"]}
        )
    return out


def _spans_zero(ci: list[float] | None) -> bool:
    return ci is None or ci[0] <= 0 <= ci[1]


@login_required
@require_safe
def rubric_reward_fit_json(request: HttpRequest, slug: str, fit_id: int) -> JsonResponse:
    project = _project(request, slug)
    fit = get_object_or_404(
        RubricRewardFit.objects.select_related("rubric_version__rubric"), pk=fit_id, project=project
    )
    response = JsonResponse(fit_parameters(fit), json_dumps_params={"indent": 2})
    response["Content-Disposition"] = f'attachment; filename="{project.slug}-rubric-reward-{fit.pk}.json"'
    return response


@login_required
@require_POST
def rubric_reward_export(request: HttpRequest, slug: str, fit_id: int) -> HttpResponse:
    """Start a `trl` export of the fit's snapshot with `reward_terms` (who may export: exporters.can_export)."""
    project = _project(request, slug)
    fit = get_object_or_404(RubricRewardFit.objects.select_related("snapshot"), pk=fit_id, project=project)
    if not can_export(request.user, project):
        raise Http404("No such page")
    try:
        job = start_export_job(
            project=project,
            actor=request.user,
            snapshot=fit.snapshot,
            fmt="trl",
            options={"reward_fit": fit.pk, "margin": True, "via": "page"},
        )
    except ExportError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request, f"Export {job.pk} queued: trl rows of snapshot {fit.snapshot_id} with reward_terms."
        )
    return redirect(
        "rewardtrain:rubric_reward_version", slug=project.slug, rubric_version_id=fit.rubric_version_id
    )
