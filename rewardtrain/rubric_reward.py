"""Rubric rewards from the database: the pairs of a snapshot with the criterion answers of a rubric version
(and a reward model's scores), the fit as an immutable `RubricRewardFit`, the Celery job that makes it, and
the per-response reward terms the `trl` export writes beside its rows (registered with `curation.reward_terms`).

The arithmetic is in rubric_fit.py (no Django); the function a policy trainer calls is rubric_reward_fn.py.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from celery import current_app
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from annotate.models import Comparison
from curation.models import DatasetSnapshot, SnapshotPair
from projects.models import AuditEvent, Project
from rubrics.models import CriterionAnswer, RubricVersion
from rubrics.scoring import NO, YES, weighted_score
from rubrics.services import version_views

from . import rubric_fit
from .models import ModelVersion, RubricRewardFit, RubricRewardJob, Score
from .rubric_reward_fn import RubricReward

FIT_TASK = "rewardtrain.tasks.fit_rubric_reward"
MAX_C = 1e6


class RubricRewardError(ValueError):
    """Bad fit options (a draft version, a model of another project, …): the message names what."""


# --- reading the answers ----------------------------------------------------------------------------------


def _answers(version: RubricVersion, comparison_ids: Iterable[int], exclude: Sequence[str]):
    """(comparison, judgment, side, key, answer) of the latest revision of every crowd judgment on the
    comparisons, under `version`, that the snapshot's filters let count (`imported`, `flagged`)."""
    qs = CriterionAnswer.objects.filter(
        version=version,
        revision__judgment__comparison_id__in=list(comparison_ids),
        revision__judgment__is_source=False,
        revision__number=F("revision__judgment__revision_count"),
    )
    if "imported" in exclude:
        qs = qs.filter(revision__judgment__imported=False)
    if "flagged" in exclude:
        qs = qs.filter(revision__judgment__annotator__flagged=False)
    return qs.values_list(
        "revision__judgment__comparison_id", "revision__judgment_id", "side", "criterion_key", "answer"
    ).iterator(chunk_size=5000)


def response_values(
    version: RubricVersion, comparison_ids: Iterable[int], keys: Sequence[str], exclude: Sequence[str] = ()
) -> tuple[dict[tuple[int, str], np.ndarray], dict[tuple[int, str], dict[int, dict[str, str]]]]:
    """{(comparison, side): v per key (share of yes among yes/no, NaN when none)} and the answers by judgment
    {(comparison, side): {judgment: {key: answer}}}."""
    index = {k: i for i, k in enumerate(keys)}
    yes: dict[tuple[int, str], np.ndarray] = defaultdict(lambda: np.zeros(len(keys)))
    known: dict[tuple[int, str], np.ndarray] = defaultdict(lambda: np.zeros(len(keys)))
    by_judgment: dict[tuple[int, str], dict[int, dict[str, str]]] = defaultdict(lambda: defaultdict(dict))
    for cid, judgment, side, key, answer in _answers(version, comparison_ids, exclude):
        by_judgment[(cid, side)][judgment][key] = answer
        if key in index and answer in (YES, NO):
            known[(cid, side)][index[key]] += 1
            yes[(cid, side)][index[key]] += answer == YES
    values = {}
    for unit in by_judgment:
        k = known[unit]
        values[unit] = np.where(k > 0, yes[unit] / np.maximum(k, 1), np.nan)
    return values, by_judgment


def fit_data(
    snapshot: DatasetSnapshot, version: RubricVersion, model: ModelVersion | None = None
) -> tuple[rubric_fit.FitData, dict[str, int]]:
    """The snapshot's pairs that have answers under `version` on both sides (and, with a model, its scores on
    both responses), as a FitData; and counts of what was left out."""
    checklist = version_views(version)
    keys = [c.key for c in checklist]
    scoring = [c.scoring() for c in checklist]
    cap = snapshot.project.rubric_essential_cap
    pairs = list(
        SnapshotPair.objects.filter(snapshot=snapshot)
        .order_by("comparison_id")
        .values_list(
            "comparison_id",
            "chosen",
            "comparison__item_id",
            "comparison__response_a_id",
            "comparison__response_b_id",
        )
    )
    exclude = snapshot.filters.get("exclude", [])
    values, by_judgment = response_values(version, (p[0] for p in pairs), keys, exclude)
    scores: dict[int, float] = {}
    if model is not None:
        wanted = [r for p in pairs for r in (p[3], p[4])]
        scores = dict(
            Score.objects.filter(model_version=model, response_id__in=wanted).values_list(
                "response_id", "value"
            )
        )
    counts = {"snapshot_pairs": len(pairs), "without_answers": 0, "without_scores": 0}
    rows: dict[str, list] = defaultdict(list)
    for cid, chosen, item, resp_a, resp_b in pairs:
        if (cid, "a") not in values or (cid, "b") not in values:
            counts["without_answers"] += 1
            continue
        if model is not None and (resp_a not in scores or resp_b not in scores):
            counts["without_scores"] += 1
            continue
        rows["xa"].append(values[(cid, "a")])
        rows["xb"].append(values[(cid, "b")])
        rows["y"].append(1 if chosen == "a" else 0)
        rows["groups"].append(item)
        for side in ("a", "b"):
            hand = [
                weighted_score(scoring, answers, essential_cap=cap)
                for answers in by_judgment[(cid, side)].values()
            ]
            hand = [h for h in hand if h is not None]
            rows[f"hand_{side}"].append(float(np.mean(hand)) if hand else np.nan)
        if model is not None:
            rows["ra"].append(scores[resp_a])
            rows["rb"].append(scores[resp_b])
    k = len(keys)
    data = rubric_fit.FitData(
        keys=keys,
        xa=np.array(rows["xa"], dtype=float).reshape(-1, k),
        xb=np.array(rows["xb"], dtype=float).reshape(-1, k),
        y=np.array(rows["y"], dtype=np.int64),
        groups=np.array(rows["groups"], dtype=np.int64),
        hand_a=np.array(rows["hand_a"], dtype=float),
        hand_b=np.array(rows["hand_b"], dtype=float),
        ra=np.array(rows["ra"], dtype=float) if model is not None else None,
        rb=np.array(rows["rb"], dtype=float) if model is not None else None,
    )
    counts["used"] = data.n
    return data, counts


# --- the fit ----------------------------------------------------------------------------------------------


def check_fit_options(
    *,
    project: Project,
    version: RubricVersion,
    snapshot: DatasetSnapshot,
    model: ModelVersion | None,
    c: float,
) -> None:
    """Raise RubricRewardError naming the bad option; nothing is written."""
    if not version.is_published:
        raise RubricRewardError(f"rubric version: {version.label} is a draft; fit a published version")
    if snapshot.project_id != project.pk:
        raise RubricRewardError(f"snapshot: snapshot {snapshot.pk} belongs to another project")
    if model is not None and model.project_id != project.pk:
        raise RubricRewardError(f"model: model {model.pk} belongs to another project")
    if model is not None and model.kind != ModelVersion.Kind.REWARD:
        raise RubricRewardError(f"model: model {model.pk} is a {model.kind} model, not a reward model")
    if not (isinstance(c, int | float) and 0 < c <= MAX_C):
        raise RubricRewardError(
            f"c: the inverse regularisation strength must lie in (0, {MAX_C:g}], not {c!r}"
        )


def fit_rubric_reward(
    *,
    project: Project,
    version: RubricVersion,
    snapshot: DatasetSnapshot,
    model: ModelVersion | None = None,
    c: float = rubric_fit.DEFAULT_C,
    n_splits: int = rubric_fit.DEFAULT_FOLDS,
    n_resamples: int = rubric_fit.N_RESAMPLES,
    n_weight_resamples: int = rubric_fit.N_WEIGHT_RESAMPLES,
    actor=None,
) -> RubricRewardFit:
    """Fit, cross-validate and store a rubric reward (raises RubricRewardError or rubric_fit.FitError)."""
    check_fit_options(project=project, version=version, snapshot=snapshot, model=model, c=c)
    data, counts = fit_data(snapshot, version, model)
    results = rubric_fit.evaluate(
        data, c=c, n_splits=n_splits, n_resamples=n_resamples, n_weight_resamples=n_weight_resamples
    )
    results["counts"] = counts
    used = results["combined_weights"] if model is not None else results["weights"]
    weights = {row["key"]: row["weight"] for row in used if row["key"] != "model"}
    model_weight = next((row["weight"] for row in used if row["key"] == "model"), None)
    name = actor.get_username() if actor is not None and getattr(actor, "is_authenticated", False) else ""
    with transaction.atomic():
        fit = RubricRewardFit.objects.create(
            project=project,
            rubric_version=version,
            snapshot=snapshot,
            snapshot_hash=snapshot.content_hash,
            model_version=model,
            criterion_keys=data.keys,
            weights=weights,
            model_weight=model_weight,
            fill=results["fill"],
            options=results["options"],
            results=results,
            created_by=name,
        )
        AuditEvent.objects.create(
            actor=actor if name else None,
            actor_name=name,
            action="rubric_reward.fit",
            project=project,
            target_type="rubric_reward_fit",
            target_id=str(fit.pk),
            data={
                "rubric_version": version.label,
                "snapshot": snapshot.pk,
                "snapshot_hash": snapshot.content_hash,
                "model_version": model.pk if model else None,
                "pairs": data.n,
            },
        )
    return fit


def fit_parameters(fit: RubricRewardFit) -> dict[str, Any]:
    """What `RubricReward.from_dict` reads, with the fit's lineage (the page's JSON download)."""
    return {
        "fit": fit.pk,
        "rubric_version": fit.rubric_version.label,
        "snapshot": fit.snapshot_id,
        "snapshot_hash": fit.snapshot_hash,
        "model_version": fit.model_version_id,
        "weights": fit.weights,
        "fill": fit.fill,
        "model_weight": fit.model_weight,
    }


# --- the job ----------------------------------------------------------------------------------------------


def start_fit_job(
    *,
    project: Project,
    version: RubricVersion,
    snapshot: DatasetSnapshot,
    model: ModelVersion | None,
    c: float,
    actor,
    n_resamples: int = rubric_fit.N_RESAMPLES,
    n_weight_resamples: int = rubric_fit.N_WEIGHT_RESAMPLES,
) -> RubricRewardJob:
    """Check the options (RubricRewardError), record the job, send the task to the `cpu` queue on commit."""
    check_fit_options(project=project, version=version, snapshot=snapshot, model=model, c=c)
    with transaction.atomic():
        job = RubricRewardJob.objects.create(
            project=project,
            rubric_version=version,
            snapshot=snapshot,
            model_version=model,
            options={"c": c, "n_resamples": n_resamples, "n_weight_resamples": n_weight_resamples},
            created_by=actor,
        )
        job_id = job.pk
        transaction.on_commit(lambda: current_app.send_task(FIT_TASK, args=[job_id], queue="cpu"))
    return job


def run_fit_job(job_id: int) -> RubricRewardJob:
    """Claim a queued job (conditional UPDATE: a redelivered task does nothing), fit, record the outcome.
    A fit that cannot be made (too few pairs, …) fails the job with its message."""
    claimed = RubricRewardJob.objects.filter(pk=job_id, status=RubricRewardJob.Status.QUEUED).update(
        status=RubricRewardJob.Status.RUNNING
    )
    job = RubricRewardJob.objects.select_related(
        "project", "rubric_version__rubric", "snapshot__project", "model_version", "created_by"
    ).get(pk=job_id)
    if not claimed:
        return job
    try:
        fit = fit_rubric_reward(
            project=job.project,
            version=job.rubric_version,
            snapshot=job.snapshot,
            model=job.model_version,
            c=float(job.options.get("c", rubric_fit.DEFAULT_C)),
            n_resamples=int(job.options.get("n_resamples", rubric_fit.N_RESAMPLES)),
            n_weight_resamples=int(job.options.get("n_weight_resamples", rubric_fit.N_WEIGHT_RESAMPLES)),
            actor=job.created_by,
        )
    except (RubricRewardError, rubric_fit.FitError) as exc:
        return _finish(job_id, status=RubricRewardJob.Status.FAILED, error=str(exc))
    except Exception as exc:
        _finish(job_id, status=RubricRewardJob.Status.FAILED, error=f"{type(exc).__name__}: {exc}")
        raise
    return _finish(job_id, status=RubricRewardJob.Status.SUCCEEDED, fit=fit)


def _finish(job_id: int, **fields) -> RubricRewardJob:
    RubricRewardJob.objects.filter(pk=job_id).update(finished_at=timezone.now(), **fields)
    return RubricRewardJob.objects.get(pk=job_id)


# --- reward terms beside the trl rows (curation.reward_terms) ---------------------------------------------


class FitRewardTerms:
    """Registered with `curation.reward_terms` in RewardtrainConfig.ready()."""

    def check(self, snapshot: DatasetSnapshot, fit_id: int) -> None:
        fit = RubricRewardFit.objects.filter(pk=fit_id).only("snapshot_id").first()
        if fit is None:
            raise ValueError(f"reward_fit: no rubric reward fit {fit_id}")
        if fit.snapshot_id != snapshot.pk:
            raise ValueError(
                f"reward_fit: fit {fit_id} was fitted on snapshot {fit.snapshot_id}, not {snapshot.pk}"
            )

    def terms(self, snapshot: DatasetSnapshot, fit_id: int, pairs: Sequence[tuple[int, str]]) -> list[dict]:
        """For (comparison id, chosen side) pairs, in order: {"fit", "weights", "model_weight", "chosen":
        {"criteria": {key: v}, "model_score", "score"}, "rejected": {…}}; score is None where the fit has a
        model weight and the response has no score of that model."""
        fit = RubricRewardFit.objects.select_related("rubric_version").get(pk=fit_id)
        reward = RubricReward(fit.weights, fit.fill, fit.model_weight)
        ids = [cid for cid, _ in pairs]
        values, _ = response_values(
            fit.rubric_version, ids, fit.criterion_keys, snapshot.filters.get("exclude", [])
        )
        sides = {
            cid: (a, b)
            for cid, a, b in Comparison.objects.filter(pk__in=ids).values_list(
                "pk", "response_a_id", "response_b_id"
            )
        }
        scores: dict[int, float] = {}
        if fit.model_version_id is not None:
            wanted = [r for pair in sides.values() for r in pair]
            scores = dict(
                Score.objects.filter(
                    model_version_id=fit.model_version_id, response_id__in=wanted
                ).values_list("response_id", "value")
            )
        out = []
        for cid, chosen in pairs:
            entry: dict[str, Any] = {"fit": fit.pk, "weights": fit.weights, "model_weight": fit.model_weight}
            for role, side in (("chosen", chosen), ("rejected", "b" if chosen == "a" else "a")):
                raw = values.get((cid, side))
                criteria = {
                    key: (float(raw[i]) if raw is not None and np.isfinite(raw[i]) else None)
                    for i, key in enumerate(fit.criterion_keys)
                }
                model_score = scores.get(sides[cid][0 if side == "a" else 1])
                score = (
                    None
                    if fit.model_weight is not None and model_score is None
                    else reward(criteria, model_score)
                )
                entry[role] = {"criteria": criteria, "model_score": model_score, "score": score}
            out.append(entry)
        return out
