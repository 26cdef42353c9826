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
import random
import statistics
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from curation.importers.formats import PARSERS, BadLine, ParseContext, ParsedPair, flipped
from curation.importers.readers import ImportLimitExceeded, InvalidRecord, RecordReader
from curation.models import SnapshotPair
from insights.consensus import OK, Vote, decide
from rewardtrain.trainer.calibration import pair_calibration
from rewardtrain.trainer.training import Pair, load_scorer, score_pairs

from .models import EvaluationJob, ModelVersion

log = logging.getLogger(__name__)
FORMATS = ("trl", "hh", "safe-rlhf", "raw", "generic")


class EvaluationError(ValueError):
    """The file cannot be evaluated; the message says where (file:line) and what."""


@dataclass
class LabelledPair:
    line: int
    prompt: list[dict]
    chosen: str
    rejected: str
    chosen_safe: bool | None = None
    rejected_safe: bool | None = None
    extra: dict = field(default_factory=dict)


def parsed_pairs(path: Path, fmt: str) -> Iterator[ParsedPair]:
    """Every pair of the file as the importer parses it; the first bad line raises EvaluationError."""
    # Any harm category name is accepted: the file is scored, not stored in a project.
    ctx = ParseContext(harm_categories=[], add_harm_categories=True, rng=random.Random(0))
    parse = PARSERS[fmt]
    try:
        for line, obj in RecordReader(path):
            if isinstance(obj, InvalidRecord):
                raise EvaluationError(f"{path.name}:{line}: {obj.message}")
            try:
                yield from parse(obj, line, ctx)
            except BadLine as error:
                where = f"field {error.field!r} " if error.field else ""
                raise EvaluationError(f"{path.name}:{line}: {where}{error.message}") from None
    except OSError as error:
        raise EvaluationError(f"{path.name}: cannot read the file ({error})") from None
    except ImportLimitExceeded as error:  # the file unpacks past ARBITER_IMPORT_MAX_DECOMPRESSED_MB
        raise EvaluationError(f"{path.name}:{error.line}: {error.message}") from None


def _labelled(p: ParsedPair, label: dict, *, cost: bool) -> LabelledPair | None:
    """The pair oriented chosen-first by its label (for a cost model: the safer response), or None when the
    label names no side."""
    side = label["harmlessness"] if cost else label["choice"]
    if side not in ("a", "b"):
        return None
    extra = {"pair_key": p.pair_key}
    if side == "a":
        return LabelledPair(p.line, p.messages, p.a_text, p.b_text, label["a_safe"], label["b_safe"], extra)
    return LabelledPair(p.line, p.messages, p.b_text, p.a_text, label["b_safe"], label["a_safe"], extra)


def read_labelled(path: Path, fmt: str, *, cost: bool, skipped: dict) -> Iterator[LabelledPair]:
    """trl, hh, safe-rlhf: one labelled pair a line (trl and hh name only the better response, which a cost
    model is scored against too)."""
    by_safety = cost and fmt == "safe-rlhf"
    for p in parsed_pairs(path, fmt):
        pair = _labelled(p, p.label, cost=by_safety)
        if pair is None:
            skipped["no_label"] = skipped.get("no_label", 0) + 1
            continue
        yield pair


def read_raw(path: Path, *, cost: bool, skipped: dict) -> Iterator[LabelledPair]:
    """Votes grouped by pair (canonical order = first arrival), each annotator's latest row counted, the label
    decided by the consensus rule."""
    firsts: dict[str, ParsedPair] = {}
    votes: dict[str, dict[str, tuple[int, dict]]] = {}
    for position, p in enumerate(parsed_pairs(path, "raw")):
        first = firsts.setdefault(p.pair_key, p)
        label = p.label if p.a_key == first.a_key else flipped(p.label)
        # The latest revision counts: the highest revision number, else the later row.
        order = (p.revision or 0, position)
        latest = votes.setdefault(p.pair_key, {})
        if p.annotator not in latest or order >= latest[p.annotator][0]:
            latest[p.annotator] = (order, label)
    axis = "harmlessness" if cost else "overall"
    for key, first in firsts.items():
        outcome = decide(
            [
                Vote(
                    v["preference"],
                    v["choice"],
                    v["helpfulness"],
                    v["harmlessness"],
                    v["a_safe"],
                    v["b_safe"],
                )
                for _, v in votes[key].values()
            ],
            axis=axis,
        )
        if outcome.status != OK:
            skipped["no_consensus"] = skipped.get("no_consensus", 0) + 1
            continue
        side = outcome.chosen
        pair = _labelled(
            first,
            {"choice": side, "harmlessness": side, "a_safe": outcome.a_safe, "b_safe": outcome.b_safe},
            cost=False,
        )
        pair.extra["share"] = outcome.agreement  # of the non-tie votes, for the chosen side
        yield pair


def read_pairs(path: str | Path, fmt: str, *, cost: bool = False) -> tuple[list[LabelledPair], dict]:
    """All labelled pairs of the file (chosen = the safer response for a cost model), and what was left out."""
    path = Path(path)
    skipped: dict = {}
    if fmt == "generic":
        raise EvaluationError(
            f"{path.name}: 'generic' files carry no preference label, so there is nothing to evaluate against; "
            "use a trl, hh, safe-rlhf or raw file"
        )
    if fmt not in FORMATS:
        raise EvaluationError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if fmt == "raw":
        pairs = list(read_raw(path, cost=cost, skipped=skipped))
    else:
        pairs = list(read_labelled(path, fmt, cost=cost, skipped=skipped))
    if not pairs:
        raise EvaluationError(f"{path.name}: no labelled pairs to evaluate")
    return pairs, skipped


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
    pairs = [
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


def run_job(job_id: int) -> str:
    """The evaluate page's background task: score the uploaded file, store the report."""
    claimed = EvaluationJob.objects.filter(pk=job_id, status=EvaluationJob.Status.QUEUED).update(
        status=EvaluationJob.Status.RUNNING
    )
    if not claimed:
        return "skipped"
    job = EvaluationJob.objects.select_related("model_version").get(pk=job_id)
    scores_path = Path(settings.ARBITER_EXPORTS_DIR) / "evaluations" / f"evaluation-{job.pk}-scores.jsonl"
    scores_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        report = evaluate_file(job.model_version, job.path, job.format, out=scores_path)
    except EvaluationError as error:
        job.status, job.error = EvaluationJob.Status.FAILED, str(error)
    except Exception as error:  # recorded on the job (the page shows it), and logged with its traceback
        log.exception("evaluation %s failed", job.pk)
        job.status, job.error = EvaluationJob.Status.FAILED, f"{type(error).__name__}: {error}"
    else:
        job.status, job.report, job.scores_path = EvaluationJob.Status.SUCCEEDED, report, str(scores_path)
    job.finished_at = timezone.now()
    with transaction.atomic():
        job.save(update_fields=["status", "error", "report", "scores_path", "finished_at"])
    return job.status
