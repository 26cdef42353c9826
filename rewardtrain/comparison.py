"""Scoring an evaluation set with several model versions: the `compare_models` job and command.

Each model scores every pair of the set (`rewardtrain.trainer.training.score_pairs`, the margin chosen −
rejected; for cost models, the safer response is chosen). A pair any of the compared models was trained on
is left out for all of them (counted in `skipped.trained_on`), so every model is measured on the same pairs.
The per-pair margins go to a JSON-lines file under ARBITER_EXPORTS_DIR, the figures (eval_sets.summarise) to
the job row.

Imports torch: only the worker and management commands load this module.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from django.conf import settings

from .eval_reading import EvaluationError, read_pairs
from .eval_sets import SetError, check_models, summarise
from .evaluation import as_train_pairs, run_recorded, training_pair_keys
from .models import EvaluationSet, ModelComparison, ModelVersion
from .trainer.training import load_scorer, score_pairs

log = logging.getLogger(__name__)


def _prompt_text(messages: list[dict]) -> str:
    return "\n".join(m["content"] for m in messages if m["role"] == "user")


def compare(
    eval_set: EvaluationSet, versions: list[ModelVersion], *, batch_size: int = 64
) -> tuple[list, dict]:
    """(per-pair rows, summary) of `versions` on `eval_set`."""
    cost = versions[0].kind == ModelVersion.Kind.COST
    labelled, skipped = read_pairs(Path(eval_set.path), eval_set.format, cost=cost, with_subsets=True)
    trained = set().union(*(training_pair_keys(v) for v in versions))
    kept = [p for p in labelled if p.extra["pair_key"] not in trained]
    if len(kept) < len(labelled):
        skipped = {**skipped, "trained_on": len(labelled) - len(kept)}
    if not kept:
        raise EvaluationError(
            f"{eval_set.name}: every pair of the set is one a compared model was trained on"
        )
    pairs = as_train_pairs(kept)
    rows = [
        {
            "line": p.line,
            "subset": p.extra.get("subset", ""),
            "strength": p.extra.get("share", p.extra.get("margin")),
            "pair_key": p.extra["pair_key"],
            "prompt": _prompt_text(p.prompt),
            "chosen": p.chosen,
            "rejected": p.rejected,
            "margins": {},
        }
        for p in kept
    ]
    for version in versions:
        scored = score_pairs(
            load_scorer(version.path), pairs, objective="cost" if cost else "bt", batch_size=batch_size
        )
        for row, result in zip(rows, scored["per_pair"], strict=True):
            row["margins"][str(version.pk)] = result["margin"]
    summary = summarise(rows, [v.pk for v in versions], eval_set.strength)
    summary["skipped"] = skipped
    summary["kind"] = versions[0].kind
    return rows, summary


def write_rows(rows: list[dict], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")


def run_job(job_id: int) -> str:
    """The comparison job: score, write the per-pair file, store the figures (or the error) on the row."""

    def work(job: ModelComparison) -> dict:
        out = Path(settings.ARBITER_EXPORTS_DIR) / "comparisons" / f"comparison-{job.pk}.jsonl"
        rows, summary = compare(job.eval_set, check_models(job.project, job.model_ids))
        write_rows(rows, out)
        return {"summary": summary, "results_path": str(out)}

    return run_recorded(
        ModelComparison, job_id, work, related=("eval_set", "project"), expected=(EvaluationError, SetError)
    )
