"""Per-criterion figures of a rubric version: how far annotators agree on each criterion, how often it
separates the two responses, how well it predicts the human choice, and which criteria explain the
disagreement on contested comparisons. Definitions: DESIGN.md "Rubric rewards".

`criterion_figures(rows, criteria)` works on plain rows; `load_rows(project, version)` reads them.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.db.models import F

from insights import metrics as M
from insights.agreement import choice_of
from rubrics.models import CriterionAnswer, RubricVersion
from rubrics.scoring import NA, NO, YES, JudgedPair, ScoringCriterion, rubric_vs_preference

ANSWERS = (YES, NO, NA)  # category codes 0, 1, 2 of the agreement figures
# Krippendorff's own lowest bar for tentative conclusions; AC1 at or above HIGH_AC1 overrides a low alpha
# (alpha's prevalence paradox: nearly every answer in one category makes the expected disagreement tiny).
ALPHA_BAR = 0.667
HIGH_AC1 = 0.8
N_RESAMPLES = 500
SEED = 0
CONTESTED_LIMIT = 20


@dataclass(frozen=True)
class AnswerRow:
    """One criterion answer of the latest revision of one judgment, on one canonical side."""

    comparison_id: int
    annotator_id: int
    choice: str | None  # the judgment's A / tie / B
    side: str  # "a" | "b"
    key: str
    answer: str  # yes | no | na


def gwet_ac1(r: M.Ratings) -> float | None:
    """Gwet's AC1 for many raters with missing ratings (Gwet 2008; as irrCAC's `CAC.gwet()` computes it).

    pa = mean over units with >= 2 ratings of Σ_k r_ik (r_ik - 1) / (r_i (r_i - 1));
    π_k = mean over units with >= 1 rating of r_ik / r_i; pe = Σ_k π_k (1 - π_k) / (q - 1), q = n_categories;
    AC1 = (pa - pe) / (1 - pe). None when no unit has two ratings or q < 2.
    """
    counts = r.counts.astype(float)
    sizes = counts.sum(axis=1)
    rated = sizes >= 1
    paired = sizes >= 2
    q = r.n_categories
    if not paired.any() or q < 2:
        return None
    pa = float(
        np.mean((counts[paired] * (counts[paired] - 1)).sum(axis=1) / (sizes[paired] * (sizes[paired] - 1)))
    )
    pi = (counts[rated] / sizes[rated, None]).mean(axis=0)
    pe = float((pi * (1 - pi)).sum() / (q - 1))
    if pe >= 1:
        return None
    return (pa - pe) / (1 - pe)


def wilson(successes: int, n: int, z: float = 1.959963984540054) -> list[float] | None:
    """The Wilson score interval of a share (95% by default); None when n is 0."""
    if n == 0:
        return None
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [max(0.0, centre - half), min(1.0, centre + half)]


def criterion_ratings(rows: Iterable[AnswerRow], key: str) -> M.Ratings:
    """One criterion's answers as ratings: unit = (comparison, side), rater = annotator, yes / no / na."""
    ratings, _, _ = M.Ratings.from_rows(
        (((row.comparison_id, row.side), row.annotator_id, row.answer) for row in rows if row.key == key),
        ANSWERS,
    )
    return ratings


def _judged_pairs(rows: Sequence[AnswerRow]) -> list[JudgedPair]:
    by_judgment: dict[tuple[int, int], dict[str, Any]] = {}
    for row in rows:
        entry = by_judgment.setdefault(
            (row.comparison_id, row.annotator_id), {"choice": row.choice, "a": {}, "b": {}}
        )
        entry[row.side][row.key] = row.answer
    return [JudgedPair(e["choice"], e["a"], e["b"]) for e in by_judgment.values() if e["choice"]]


def criterion_figures(
    rows: Sequence[AnswerRow],
    criteria: Sequence[ScoringCriterion],
    *,
    n_resamples: int = N_RESAMPLES,
    seed: int = SEED,
) -> list[dict[str, Any]]:
    """Per criterion: agreement (alpha, AC1), discrimination, prediction of the choice, and flags."""
    discrimination = {f.key: f for f in rubric_vs_preference(criteria, _judged_pairs(rows)).criteria}
    by_key: dict[str, list[AnswerRow]] = defaultdict(list)
    for row in rows:
        by_key[row.key].append(row)
    out = []
    for criterion in criteria:
        ratings = criterion_ratings(by_key.get(criterion.key, []), criterion.key)
        alpha = M.krippendorff_alpha(ratings)
        alpha_ci = M.bootstrap_ci(ratings, "alpha_nominal", n_resamples, seed) if alpha is not None else None
        ac1 = gwet_ac1(ratings)
        d = discrimination[criterion.key]
        decided = d.with_preference + d.against_preference
        share = d.with_preference / decided if decided else None
        share_ci = wilson(d.with_preference, decided)
        flags = []
        if d.flag == "never":
            flags.append("never discriminates")
        if alpha is not None and alpha < ALPHA_BAR and (ac1 is None or ac1 < HIGH_AC1):
            flags.append("annotators disagree")
        if share_ci is not None and share_ci[1] < 0.5:
            flags.append("contradicts the preference")
        out.append(
            {
                "key": criterion.key,
                "category": criterion.category,
                "weight": criterion.weight,
                "responses": int((ratings.sizes >= 1).sum()),
                "paired_responses": int((ratings.sizes >= 2).sum()),
                "alpha": alpha,
                "alpha_ci": list(alpha_ci) if alpha_ci else None,
                "ac1": ac1,
                "answered": d.answered,
                "discriminating": d.discriminating,
                "rate": d.rate,
                "with_preference": d.with_preference,
                "against_preference": d.against_preference,
                "predicts": share,
                "predicts_ci": share_ci,
                "flags": flags,
            }
        )
    return out


def _favour(criterion: ScoringCriterion, a: str | None, b: str | None) -> int | None:
    """+1 when the answers favour A (met on A only; for a pitfall, met on B only), -1 for B, 0 when equal."""
    if a not in (YES, NO) or b not in (YES, NO):
        return None
    diff = (a == YES) - (b == YES)
    return diff if criterion.weight > 0 else -diff


def _mean_interval(values: np.ndarray, n_resamples: int, seed: int) -> list[float] | None:
    """95% percentile interval of the mean over bootstrap resamples of the values."""
    draws = np.random.default_rng(seed).integers(0, values.size, size=(n_resamples, values.size))
    bounds = M.percentile_interval(values[draws].mean(axis=1), 0.95)
    return list(bounds) if bounds else None


def disagreement_figures(
    rows: Sequence[AnswerRow],
    criteria: Sequence[ScoringCriterion],
    *,
    limit: int = CONTESTED_LIMIT,
    n_resamples: int = N_RESAMPLES,
    seed: int = SEED,
) -> dict[str, Any]:
    """Contested comparisons (at least one annotator chose A and one chose B): per criterion, how often the
    answers of the A camp and the B camp differ, and how often they differ the way the camps chose.

    For each annotator the criterion's favour is +1 (it favours A), -1 (B) or 0; a camp's favour is the mean
    over its members who answered yes / no on both sides. `gap` = favour(A camp) − favour(B camp): positive
    when the criterion's answers side with each camp's own choice (`consistent`), negative when against it
    (`opposed`). Criteria are ranked by their mean gap: answers that differ at random give as many negative
    gaps as positive ones, and a mean near 0."""
    judgments: dict[int, dict[int, dict[str, Any]]] = defaultdict(dict)
    for row in rows:
        entry = judgments[row.comparison_id].setdefault(
            row.annotator_id, {"choice": row.choice, "a": {}, "b": {}}
        )
        entry[row.side][row.key] = row.answer
    contested = {
        cid: people
        for cid, people in judgments.items()
        if {p["choice"] for p in people.values()} >= {"a", "b"}
    }
    per_criterion = {
        c.key: {"key": c.key, "contested": 0, "differs": 0, "consistent": 0, "opposed": 0, "gaps": []}
        for c in criteria
    }
    listed = []
    for cid, people in sorted(contested.items()):
        explaining = []
        for criterion in criteria:
            camps: dict[str, list[int]] = {"a": [], "b": []}
            for person in people.values():
                if person["choice"] in camps:
                    f = _favour(criterion, person["a"].get(criterion.key), person["b"].get(criterion.key))
                    if f is not None:
                        camps[person["choice"]].append(f)
            if not camps["a"] or not camps["b"]:
                continue
            figure = per_criterion[criterion.key]
            figure["contested"] += 1
            gap = float(np.mean(camps["a"]) - np.mean(camps["b"]))
            figure["gaps"].append(gap)
            if gap != 0:
                figure["differs"] += 1
            if gap > 0:
                figure["consistent"] += 1
                explaining.append((criterion.key, gap))
            elif gap < 0:
                figure["opposed"] += 1
        votes = [p["choice"] for p in people.values()]
        listed.append(
            {
                "comparison_id": cid,
                "votes_a": votes.count("a"),
                "votes_b": votes.count("b"),
                "votes_tie": votes.count("tie"),
                "criteria": [key for key, _ in sorted(explaining, key=lambda kv: -kv[1])],
            }
        )
    figures = []
    for figure in per_criterion.values():
        gaps = figure.pop("gaps")
        n = figure["contested"]
        figure["mean_gap"] = float(np.mean(gaps)) if gaps else None
        figure["mean_gap_ci"] = _mean_interval(np.array(gaps), n_resamples, seed) if len(gaps) > 1 else None
        figure["consistent_share"] = figure["consistent"] / n if n else None
        figures.append(figure)
    figures.sort(key=lambda f: (-(f["mean_gap"] or 0.0), f["key"]))
    listed.sort(key=lambda c: (-len(c["criteria"]), c["comparison_id"]))
    return {"contested": len(contested), "criteria": figures, "comparisons": listed[:limit]}


def load_rows(project, version: RubricVersion) -> list[AnswerRow]:
    """The criterion answers given under `version` on the latest revision of every crowd judgment of the
    project's live comparisons (source labels and gold comparisons' judgments left out)."""
    qs = (
        CriterionAnswer.objects.filter(
            version=version,
            revision__judgment__project=project,
            revision__judgment__is_source=False,
            revision__judgment__is_gold=False,
            revision__judgment__comparison__deleted_at__isnull=True,
            revision__number=F("revision__judgment__revision_count"),
        )
        .order_by(
            "revision__judgment__comparison_id", "revision__judgment__annotator_id", "side", "criterion_key"
        )
        .values_list(
            "revision__judgment__comparison_id",
            "revision__judgment__annotator_id",
            "revision__choice",
            "revision__preference",
            "side",
            "criterion_key",
            "answer",
        )
    )
    return [
        AnswerRow(cid, annotator, choice_of(choice, preference), side, key, answer)
        for cid, annotator, choice, preference, side, key, answer in qs.iterator(chunk_size=5000)
    ]
