"""Reads of the training side for pages and dashboards.

Sign of `model_margins`: in the comparison's canonical order, positive = the model favours response A.
For the reward model that is r(A) − r(B); for the cost model c(B) − c(A) (A is safer when positive).
Note the opposite convention of the stored human `preference` (negative = A better): compare
-preference with a reward margin, or map both to chosen/rejected first.
"""

from __future__ import annotations

from django.db.models import F, OuterRef, Subquery

from annotate.models import Comparison
from projects.models import Project

from .models import ModelVersion, Score, TrainingRun


def active_model(project: Project, kind: str = ModelVersion.Kind.REWARD) -> ModelVersion | None:
    return ModelVersion.objects.filter(project=project, kind=kind, is_active=True).first()


def model_margins(project: Project, kind: str = ModelVersion.Kind.REWARD) -> dict[int, float]:
    """{comparison id: margin} under the project's active model of `kind`, for comparisons whose two
    responses are both scored (empty when no model of that kind is active). Sign: see the module docstring."""
    version = active_model(project, kind)
    if version is None:
        return {}
    scores = Score.objects.filter(model_version=version)
    rows = (
        Comparison.objects.filter(project=project, deleted_at__isnull=True)
        .annotate(
            score_a=Subquery(scores.filter(response_id=OuterRef("response_a_id")).values("value")[:1]),
            score_b=Subquery(scores.filter(response_id=OuterRef("response_b_id")).values("value")[:1]),
        )
        .filter(score_a__isnull=False, score_b__isnull=False)
        .values_list("pk", "score_a", "score_b")
    )
    if kind == ModelVersion.Kind.COST:
        return {pk: b - a for pk, a, b in rows}
    return {pk: a - b for pk, a, b in rows}


def runs_for_project(project: Project):
    return TrainingRun.objects.filter(project=project).select_related("snapshot").order_by("-created_at")


def versions_for_project(project: Project):
    return (
        ModelVersion.objects.filter(project=project)
        .select_related("run")
        .annotate(objective=F("run__objective"))
        .order_by("-created_at")
    )


def run_record(run: TrainingRun) -> dict:
    """The JSON record of a run (`train_reward_model --json`, the run page's JSON view)."""
    version = ModelVersion.objects.filter(run=run).first()
    return {
        "run": run.pk,
        "project": run.project.slug,
        "status": run.status,
        "objective": run.objective,
        "base_model": run.base_model,
        "queue": run.queue,
        "attempt": run.attempt,
        "snapshot": run.snapshot_id,
        "snapshot_hash": run.snapshot.content_hash if run.snapshot_id else None,
        "config": run.config,
        "model_version": version.pk if version else None,
        "model_path": version.path if version else None,
        "metrics": run.metrics,
        "progress": {k: v for k, v in (run.progress or {}).items() if k != "history"},
        "last_checkpoint": run.last_checkpoint,
        "error": run.error,
        "created_at": run.created_at.isoformat() if run.created_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
    }
