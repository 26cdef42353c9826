"""Scoring a preference file with a model version: accuracy and margin statistics, and per-pair scores.

A file is read and checked by the importer's own readers and line parsers (`curation.importers`: `.jsonl`,
`.jsonl.gz` or `.parquet`; `trl`, `hh`, `safe-rlhf` and `raw`), so a file evaluates exactly when it would import.
A `raw` file holds votes: each annotator's latest row of a pair counts (rows named in the other order are
turned to the pair's first order, as the importer does), and the pair's label is the project consensus's
majority rule (`insights.consensus.decide`; for a cost model on the harmlessness axis); a pair without
consensus is left out and counted. `generic` files carry no label and are refused. A pair the model was
trained on (its run's snapshot pairs outside its held-out split, matched by pair key) is left out and counted
(`skipped.trained_on`): a file's figures never count a training comparison. The report names the file and
how many pairs it scored, with the ECE against correctness (and against the vote share for a `raw` file). A bad line is an
EvaluationError naming the file, line and field; nothing is scored then.

Imports torch (through rewardtrain.trainer.training): only the worker and management commands load this module.
"""

from __future__ import annotations

import json
import logging
import statistics
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from curation.models import SnapshotPair
from rewardtrain.trainer.calibration import pair_calibration
from rewardtrain.trainer.training import Pair, load_scorer, score_pairs

from .eval_reading import FORMATS, EvaluationError, LabelledPair, read_pairs
from .models import EvaluationJob, ModelVersion

__all__ = ["FORMATS", "EvaluationError", "LabelledPair", "evaluate_file", "read_pairs", "run_job"]

log = logging.getLogger(__name__)


def training_pair_keys(version: ModelVersion) -> set[str]:
    """The pair keys of the comparisons `version` was trained on: its run's snapshot pairs less its held-out
    split (all of them when no split is recorded). A file's pair among them is never scored."""
    snapshot_id = version.run.snapshot_id
    if snapshot_id is None:
        return set()
    held_out = (version.eval_set or {}).get("comparison_ids") or []
    return set(
        SnapshotPair.objects.filter(snapshot_id=snapshot_id)
        .exclude(comparison_id__in=held_out)
        .values_list("comparison__pair_key", flat=True)
    )


def as_train_pairs(labelled: list[LabelledPair]) -> list[Pair]:
    """The trainer's pairs (item key = the file's line) of a file's labelled pairs, for scoring."""
    return [
        Pair(
            item_key=str(p.line),
            prompt=p.prompt,
            chosen=p.chosen,
            rejected=p.rejected,
            chosen_safe=p.chosen_safe,
            rejected_safe=p.rejected_safe,
        )
        for p in labelled
    ]


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def evaluate_file(
    version: ModelVersion, path: str | Path, fmt: str, *, out: str | Path | None = None, batch_size: int = 64
) -> dict:
    """Score every labelled pair of the file with `version`; write per-pair scores to `out` when given."""
    cost = version.kind == ModelVersion.Kind.COST
    labelled, skipped = read_pairs(path, fmt, cost=cost)
    trained = training_pair_keys(version)
    kept = [p for p in labelled if p.extra["pair_key"] not in trained]
    if len(kept) < len(labelled):
        skipped["trained_on"] = len(labelled) - len(kept)
        labelled = kept
    if not labelled:
        raise EvaluationError(f"{Path(path).name}: every pair of the file is one the model was trained on")
    pairs = as_train_pairs(labelled)
    objective = "cost" if cost else "bt"
    scored = score_pairs(load_scorer(version.path), pairs, objective=objective, batch_size=batch_size)
    per_pair = scored.pop("per_pair")
    margins = [row["margin"] for row in per_pair]
    shares = [p.extra.get("share") for p in labelled]
    report = {
        "model_version": version.pk,
        "kind": version.kind,
        "file": Path(path).name,
        "format": fmt,
        "pairs": len(pairs),
        "evaluated_on": {"kind": "evaluation file", "name": Path(path).name, "pairs": len(pairs)},
        "skipped": skipped,
        "accuracy": scored["accuracy"],
        # ECE against correctness; against the vote share too for a raw file of a reward model.
        "calibration": pair_calibration(
            margins, shares if not cost and all(s is not None for s in shares) else None
        ),
        "margin": {
            "mean": statistics.fmean(margins),
            "median": statistics.median(margins),
            "stdev": statistics.pstdev(margins),
            "p10": _quantile(margins, 0.1),
            "p90": _quantile(margins, 0.9),
            "min": min(margins),
            "max": max(margins),
        },
    }
    if cost:
        report["safer_accuracy"] = scored.get("safer_accuracy")
        report["sign_accuracy"] = scored.get("sign_accuracy")
    if out is not None:
        prefix = "cost" if cost else "reward"
        with open(out, "w", encoding="utf-8") as handle:
            for pair, row in zip(labelled, per_pair, strict=True):
                line = {
                    "line": pair.line,
                    f"{prefix}_chosen": row["chosen"],
                    f"{prefix}_rejected": row["rejected"],
                    "margin": row["margin"],
                    "correct": row["margin"] > 0,
                }
                if cost:
                    line["chosen_is"] = "safer"
                handle.write(json.dumps(line) + "\n")
        report["out"] = str(out)
    return report


def run_recorded(model, job_id: int, work, *, related: tuple[str, ...] = (), expected=(EvaluationError,)) -> str:
    """Claim the queued job row `job_id` of `model`, run `work(job)` (which returns the fields to store on
    success) and record the outcome on the row: an `expected` error's message, or any other's type and message
    (logged with its traceback)."""
    claimed = model.objects.filter(pk=job_id, status="queued").update(status="running")
    if not claimed:
        return "skipped"
    job = model.objects.select_related(*related).get(pk=job_id)
    fields = {"status", "error", "finished_at"}
    try:
        done = work(job)
    except expected as error:
        job.status, job.error = "failed", str(error)
    except Exception as error:  # recorded on the job (the page shows it), and logged with its traceback
        log.exception("%s %s failed", model.__name__, job.pk)
        job.status, job.error = "failed", f"{type(error).__name__}: {error}"
    else:
        job.status = "succeeded"
        for name, value in done.items():
            setattr(job, name, value)
        fields |= set(done)
    job.finished_at = timezone.now()
    with transaction.atomic():
        job.save(update_fields=sorted(fields))
    return job.status


def run_job(job_id: int) -> str:
    """The evaluate page's background task: score the uploaded file, store the report."""

    def work(job: EvaluationJob) -> dict:
        scores_path = Path(settings.ARBITER_EXPORTS_DIR) / "evaluations" / f"evaluation-{job.pk}-scores.jsonl"
        scores_path.parent.mkdir(parents=True, exist_ok=True)
        report = evaluate_file(job.model_version, job.path, job.format, out=scores_path)
        return {"report": report, "scores_path": str(scores_path)}

    return run_recorded(EvaluationJob, job_id, work, related=("model_version",))
