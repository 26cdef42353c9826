"""Scoring a preference file with a model version: accuracy and margin statistics, and per-pair scores.

Readers for the labelled formats of DESIGN.md "Formats" live here (the importer's parsers were not on this
branch when it was written): `trl`, `hh`, `safe-rlhf` and `raw`. A `raw` file holds votes; pairs are
aggregated by the default consensus — the side chosen by a strict majority of the non-tie choices of each
annotator's latest row (for a cost model: of the harmlessness choices); a pair without consensus is left out
and counted. `generic` files carry no label and are refused. Every bad line is an EvaluationError naming the
file, line and field; nothing is scored then.

Imports torch (through rewardtrain.trainer.training): only the worker and management commands load this module.
"""

from __future__ import annotations

import gzip
import json
import logging
import statistics
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from curation.canonical import TranscriptError, as_messages, prompt_key, split_hh_pair, text_key
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


def _open(path: Path):
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def _lines(path: Path) -> Iterator[tuple[int, dict]]:
    try:
        with _open(path) as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    value = json.loads(line)
                except ValueError as error:
                    raise EvaluationError(f"{path.name}:{number}: not JSON ({error.msg})") from None
                if not isinstance(value, dict):
                    raise EvaluationError(f"{path.name}:{number}: a line must be a JSON object")
                yield number, value
    except (OSError, UnicodeDecodeError, EOFError) as error:
        raise EvaluationError(f"{path.name}: cannot read the file ({error})") from None


def _text(where: str, name: str, value) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("text"), str):
        return value["text"]
    raise EvaluationError(f"{where}: field {name!r} must be a string")


def _messages(where: str, name: str, value) -> list[dict]:
    try:
        if isinstance(value, str):
            return as_messages(value)
        if isinstance(value, list) and all(isinstance(m, dict) for m in value):
            return as_messages(value)
    except KeyError:
        pass
    raise EvaluationError(f"{where}: field {name!r} must be a string or a list of {{role, content}} messages")


def _response(where: str, name: str, value) -> str:
    """A trl side: a plain string, or the assistant message(s) that follow the prompt."""
    if isinstance(value, str):
        return value
    messages = _messages(where, name, value)
    if not messages or any(m["role"] != "assistant" for m in messages):
        raise EvaluationError(f"{where}: field {name!r} must hold only assistant messages")
    return "\n\n".join(m["content"] for m in messages)


def read_trl(path: Path) -> Iterator[LabelledPair]:
    for number, row in _lines(path):
        where = f"{path.name}:{number}"
        for name in ("chosen", "rejected"):
            if name not in row:
                raise EvaluationError(f"{where}: missing field {name!r}")
        if "prompt" in row:
            prompt = _messages(where, "prompt", row["prompt"])
            chosen, rejected = (
                _response(where, "chosen", row["chosen"]),
                _response(where, "rejected", row["rejected"]),
            )
        else:  # implicit prompt: both sides are whole conversations that differ in the last assistant turn
            c, r = _messages(where, "chosen", row["chosen"]), _messages(where, "rejected", row["rejected"])
            if (
                not c
                or not r
                or c[-1]["role"] != "assistant"
                or r[-1]["role"] != "assistant"
                or c[:-1] != r[:-1]
            ):
                raise EvaluationError(
                    f"{where}: without 'prompt', chosen and rejected must share all but a last assistant turn"
                )
            prompt, chosen, rejected = c[:-1], c[-1]["content"], r[-1]["content"]
        yield LabelledPair(number, prompt, chosen, rejected)


def read_hh(path: Path) -> Iterator[LabelledPair]:
    for number, row in _lines(path):
        where = f"{path.name}:{number}"
        for name in ("chosen", "rejected"):
            if not isinstance(row.get(name), str):
                raise EvaluationError(f"{where}: field {name!r} must be an HH transcript string")
        try:
            prompt, chosen, rejected = split_hh_pair(row["chosen"], row["rejected"])
        except TranscriptError as error:
            raise EvaluationError(f"{where}: {error}") from None
        yield LabelledPair(number, prompt, chosen, rejected)


def _side_id(where: str, row: dict, name: str) -> int:
    value = row.get(name)
    if value not in (0, 1) or isinstance(value, bool):
        raise EvaluationError(f"{where}: field {name!r} must be 0 or 1")
    return value


def read_safe_rlhf(path: Path, *, cost: bool) -> Iterator[LabelledPair]:
    for number, row in _lines(path):
        where = f"{path.name}:{number}"
        prompt = _messages(where, "prompt", row.get("prompt"))
        responses = [_text(where, f"response_{i}", row.get(f"response_{i}")) for i in (0, 1)]
        safe = []
        for i in (0, 1):
            value = row.get(f"is_response_{i}_safe")
            if value is not None and not isinstance(value, bool):
                raise EvaluationError(f"{where}: field 'is_response_{i}_safe' must be true or false")
            safe.append(value)
        first = _side_id(where, row, "safer_response_id" if cost else "better_response_id")
        other = 1 - first
        yield LabelledPair(number, prompt, responses[first], responses[other], safe[first], safe[other])


def _raw_choice(where: str, row: dict, name: str) -> str | None:
    value = row.get(name)
    if value is None and name == "choice" and row.get("preference") is not None:
        pref = row["preference"]
        if not isinstance(pref, int) or isinstance(pref, bool) or not -3 <= pref <= 3:
            raise EvaluationError(f"{where}: field 'preference' must be an integer from -3 to 3")
        return "a" if pref < 0 else "b" if pref > 0 else "tie"
    if value not in (None, "a", "b", "tie"):
        raise EvaluationError(f"{where}: field {name!r} must be 'a', 'b', 'tie' or null")
    return value


def _majority(votes: list[str]) -> str | None:
    """Strict majority of the non-tie votes, or None."""
    a, b = votes.count("a"), votes.count("b")
    if a > b:
        return "a"
    if b > a:
        return "b"
    return None


def _safe_majority(values: list[bool | None]) -> bool | None:
    known = [v for v in values if v is not None]
    yes = sum(known)
    if yes * 2 > len(known):
        return True
    if (len(known) - yes) * 2 > len(known):
        return False
    return None


def read_raw(path: Path, *, cost: bool, skipped: dict) -> Iterator[LabelledPair]:
    """Aggregate votes per pair (prompt + unordered texts; canonical order = first arrival)."""
    groups: dict[tuple, dict] = {}
    axis = "harmlessness" if cost else "choice"
    for number, row in _lines(path):
        where = f"{path.name}:{number}"
        prompt = _messages(where, "prompt", row.get("prompt"))
        a = _text(where, "response_a", row.get("response_a"))
        b = _text(where, "response_b", row.get("response_b"))
        annotator = row.get("annotator")
        if not isinstance(annotator, str) or not annotator:
            raise EvaluationError(f"{where}: field 'annotator' must be a non-empty string")
        choice = _raw_choice(where, row, axis)
        a_safe, b_safe = row.get("a_safe"), row.get("b_safe")
        for name, value in (("a_safe", a_safe), ("b_safe", b_safe)):
            if value is not None and not isinstance(value, bool):
                raise EvaluationError(f"{where}: field {name!r} must be true, false or null")
        ka, kb = text_key(a), text_key(b)
        key = (prompt_key(prompt), *sorted((ka, kb)))
        group = groups.setdefault(key, {"line": number, "prompt": prompt, "a": a, "b": b, "votes": {}})
        flipped = ka != text_key(group["a"])
        if flipped:
            choice = {"a": "b", "b": "a"}.get(choice, choice)
            a_safe, b_safe = b_safe, a_safe
        revision = row.get("revision") if isinstance(row.get("revision"), int) else 0
        previous = group["votes"].get(annotator)
        if previous is None or revision >= previous[0]:
            group["votes"][annotator] = (revision, choice, a_safe, b_safe)
    for group in groups.values():
        votes = list(group["votes"].values())
        side = _majority([v[1] for v in votes if v[1] is not None])
        if side is None:
            skipped["no_consensus"] = skipped.get("no_consensus", 0) + 1
            continue
        a_safe = _safe_majority([v[2] for v in votes])
        b_safe = _safe_majority([v[3] for v in votes])
        if side == "a":
            yield LabelledPair(group["line"], group["prompt"], group["a"], group["b"], a_safe, b_safe)
        else:
            yield LabelledPair(group["line"], group["prompt"], group["b"], group["a"], b_safe, a_safe)


def read_pairs(path: str | Path, fmt: str, *, cost: bool = False) -> tuple[list[LabelledPair], dict]:
    """All labelled pairs of the file (chosen = the safer response for a cost model), and what was left out."""
    path = Path(path)
    skipped: dict = {}
    if fmt == "generic":
        raise EvaluationError(
            f"{path.name}: 'generic' files carry no preference label, so there is nothing to evaluate against; "
            "use a trl, hh, safe-rlhf or raw file"
        )
    if fmt == "trl":
        pairs = list(read_trl(path))
    elif fmt == "hh":
        pairs = list(read_hh(path))
    elif fmt == "safe-rlhf":
        pairs = list(read_safe_rlhf(path, cost=cost))
    elif fmt == "raw":
        pairs = list(read_raw(path, cost=cost, skipped=skipped))
    else:
        raise EvaluationError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if not pairs:
        raise EvaluationError(f"{path.name}: no labelled pairs to evaluate")
    return pairs, skipped


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def evaluate_file(
    version: ModelVersion, path: str | Path, fmt: str, *, out: str | Path | None = None, batch_size: int = 64
) -> dict:
    """Score every labelled pair of the file with `version`; write per-pair scores to `out` when given."""
    cost = version.kind == ModelVersion.Kind.COST
    labelled, skipped = read_pairs(path, fmt, cost=cost)
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
    report = {
        "model_version": version.pk,
        "kind": version.kind,
        "file": Path(path).name,
        "format": fmt,
        "pairs": len(pairs),
        "skipped": skipped,
        "accuracy": scored["accuracy"],
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
