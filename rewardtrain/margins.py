"""Margins: the human margin per comparison and, with an active reward model, how the model's margins
relate to the humans (histogram, accuracy per human-strength bucket, calibration, disagreement triage).

Reads the crowd's votes through `insights.agreement` (rewardtrain may use annotate; never the reverse) and
the active model's `Score` rows directly. The model's figures count only the held-out comparisons of the run
that made it (`ModelVersion.eval_set`), never one it was trained on; the triage list ranks every scored one. Definitions: DESIGN.md "Signs, strength, consensus and margins".
"""

from __future__ import annotations

from typing import Any

import numpy as np
from django.core.cache import cache

from annotate.models import Comparison
from infra.best_effort import DOWN, cache_call
from insights import metrics as M
from insights.agreement import CrowdData, load_crowd
from insights.dashboard import computed_key
from insights.models import Adjudication
from projects.models import Project

from .models import ModelVersion, Score

HUMAN_BINS = np.linspace(0.0, 1.0, 13)
TRIAGE_LIMIT = 100
CACHE_SECONDS = 60


def active_reward_model(project: Project) -> ModelVersion | None:
    return ModelVersion.objects.filter(project=project, kind=ModelVersion.Kind.REWARD, is_active=True).first()


def _overrides(data: CrowdData) -> np.ndarray:
    """Adjudicated overall sides per unit (A = 0, B = 2, -1 none); an adjudicated tie means no consensus."""
    index = {cid: i for i, cid in enumerate(data.unit_ids)}
    out = np.full(data.n_units, -1, dtype=np.int64)
    for cid, choice in Adjudication.objects.filter(
        comparison_id__in=data.unit_ids, axis="overall"
    ).values_list("comparison_id", "choice"):
        out[index[cid]] = {"a": M.A, "b": M.B}.get(choice, -1)
    return out


def model_preferences(data: CrowdData, model: ModelVersion) -> np.ndarray:
    """Per unit r(B) − r(A) under `model` (NaN where a side is not scored)."""
    sides = dict(
        (cid, (a, b))
        for cid, a, b in Comparison.objects.filter(pk__in=data.unit_ids).values_list(
            "pk", "response_a_id", "response_b_id"
        )
    )
    wanted = {r for pair in sides.values() for r in pair}
    scores = dict(
        Score.objects.filter(model_version=model, response_id__in=wanted).values_list("response_id", "value")
    )
    out = np.full(data.n_units, np.nan)
    for i, cid in enumerate(data.unit_ids):
        a, b = sides[cid]
        if a in scores and b in scores:
            out[i] = scores[b] - scores[a]
    return out


def evaluated_on(model: ModelVersion) -> dict[str, Any]:
    """What a model's figures are measured on: its run's held-out split (items disjoint from its training
    pairs), as the registry recorded it; kind "none" when nothing was recorded (then no figure is shown)."""
    recorded = model.eval_set or {}
    return {
        "kind": recorded.get("kind", "none"),
        "name": recorded.get("name", ""),
        "pairs": recorded.get("pairs", 0),
        "train_pairs": recorded.get("train_pairs"),
        "run": model.run_id,
    }


def model_figures(
    model: ModelVersion,
    model_pref: np.ndarray,
    side: np.ndarray,
    human: np.ndarray,
    share: np.ndarray,
    unit_ids: list[int],
) -> dict[str, Any]:
    """The model's figures on the held-out comparisons of its run only: a comparison it was trained on never
    counts (DESIGN.md "Margins")."""
    held = set((model.eval_set or {}).get("comparison_ids") or ())
    in_held = np.fromiter((cid in held for cid in unit_ids), dtype=bool, count=len(unit_ids))
    pref = np.where(in_held, model_pref, np.nan)
    mm = M.model_margin(np.zeros_like(pref), pref, side)  # r(consensus) − r(other)
    known = np.isfinite(mm)
    m_counts, m_edges = M.margin_histogram(mm, bins=20) if known.any() else (np.zeros(0), np.zeros(1))
    correct = np.where(known, (mm > 0).astype(float), np.nan)
    return {
        "id": model.pk,
        "created_at": model.created_at.isoformat(),
        "evaluated_on": evaluated_on(model),
        "held_out_in_project": int(in_held.sum()),
        "scored": int(np.isfinite(pref).sum()),
        "compared": int(known.sum()),
        "accuracy": float(np.nanmean(correct)) if known.any() else None,
        "histogram": {"counts": m_counts.tolist(), "edges": m_edges.tolist()},
        "by_strength": M.accuracy_by_strength(correct, M.strength_bucket(human)),
        "calibration": M.calibration(mm, share),
        "run_metrics": {
            key: model.metrics.get(key)
            for key in ("eval_pairs", "eval_accuracy", "eval_ece_correctness", "eval_ece_vote_share")
        },
    }


def margin_figures(project: Project, *, triage_limit: int = TRIAGE_LIMIT) -> dict[str, Any]:
    """Every figure of the margin page (JSON-able)."""
    data = load_crowd(project)
    choice_r = data.choice_ratings()
    pref_r = data.preference_ratings()
    overrides = _overrides(data)
    side = M.consensus(choice_r, overrides)
    human = M.human_margin(pref_r, side)
    share, _ = M.consensus_share(choice_r, side)
    counts, edges = M.margin_histogram(human, bins=HUMAN_BINS)
    votes_a, votes_b = choice_r.counts[:, M.A], choice_r.counts[:, M.B]
    out: dict[str, Any] = {
        "comparisons": data.n_units,
        "with_consensus": int(((side == M.A) | (side == M.B)).sum()),
        "human_margin": {
            "mean": float(np.nanmean(human)) if np.isfinite(human).any() else None,
            "known": int(np.isfinite(human).sum()),
            "histogram": {"counts": counts.tolist(), "edges": edges.tolist()},
        },
        "model": None,
    }
    model = active_reward_model(project)
    model_pref = None
    if model is not None:
        model_pref = model_preferences(data, model)  # every scored comparison: the triage list's
        out["model"] = model_figures(model, model_pref, side, human, share, data.unit_ids)
    # Adjudicated comparisons are settled: left out of the triage list.
    open_a = np.where(overrides >= 0, 0, votes_a)
    open_b = np.where(overrides >= 0, 0, votes_b)
    ranked = M.triage_rank(open_a, open_b, model_pref, limit=triage_limit)
    out["triage"] = [
        {
            "comparison_id": data.unit_ids[u],
            "score": score,
            "reason": reason,
            "votes_a": int(votes_a[u]),
            "votes_tie": int(choice_r.counts[u, M.TIE]),
            "votes_b": int(votes_b[u]),
            "model_pref": None
            if model_pref is None or not np.isfinite(model_pref[u])
            else float(model_pref[u]),
            "human_margin": None if not np.isfinite(human[u]) else float(human[u]),
        }
        for u, score, reason in ranked
    ]
    return out


def cached_margin_figures(project: Project) -> dict[str, Any]:
    """`margin_figures`, cached until the dashboard's figures are recomputed (new judgments), another model is
    activated, or a minute passes (a rescored model). With the cache down they are computed for each request
    (infra/best_effort.py: one warning an interval)."""
    model = active_reward_model(project)
    stamp = cache_call("margins stamp", cache.get, computed_key(project.pk))
    if stamp is DOWN:
        return margin_figures(project)
    key = f"margins:{project.pk}:{model.pk if model else 0}:{stamp}"
    figures = cache_call("margins figures", cache.get, key, default=None)
    if figures is None:
        figures = margin_figures(project)
        cache_call("margins figures", cache.set, key, figures, CACHE_SECONDS)
    return figures
