"""Reading a labelled preference file for evaluation (no torch, no model): the web process may import it.

A file is read and checked by the importer's own readers and line parsers (`curation.importers`), so a file
evaluates exactly when it would import; see rewardtrain/evaluation.py for the rules. An optional `subset` (or
`category`) field of a row names the row's subset (RewardBench's `prompt`/`chosen`/`rejected`/`subset` rows are
trl rows with a subset); it is collected when the caller asks for it.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from curation.importers.formats import PARSERS, BadLine, ParseContext, ParsedPair, flipped
from curation.importers.readers import ImportLimitExceeded, InvalidRecord, RecordReader
from insights.consensus import OK, Vote, decide

FORMATS = ("trl", "hh", "safe-rlhf", "raw", "generic")
# An evaluation set's formats: the labelled import formats, and RewardBench's rows (trl rows whose `subset`
# every row must name).
SET_FORMATS = ("trl", "hh", "safe-rlhf", "raw", "rewardbench")
SUBSET_FIELDS = ("subset", "category")
MAX_SUBSET = 100


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


def _take_subset(obj: dict, *, required: bool) -> str | None:
    """The row's subset (its `subset` or `category` field, taken out of the row), checked."""
    named = [name for name in SUBSET_FIELDS if name in obj]
    if len(named) > 1:
        raise BadLine("category", "give either 'subset' or 'category', not both")
    if not named:
        if required:
            raise BadLine("subset", "missing (every RewardBench row names its subset)")
        return None
    value = obj.pop(named[0])
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise BadLine(named[0], "must be a non-empty string")
    if len(value) > MAX_SUBSET:
        raise BadLine(named[0], f"longer than {MAX_SUBSET} characters")
    return value.strip()


def parsed_pairs(path: Path, fmt: str, subsets: dict[int, str] | None = None) -> Iterator[ParsedPair]:
    """Every pair of the file as the importer parses it; the first bad line raises EvaluationError.

    With `subsets`, each row's `subset`/`category` field is checked and recorded there by line (and taken out
    of the row before the format's parser reads it)."""
    # Any harm category name is accepted: the file is scored, not stored in a project.
    ctx = ParseContext(harm_categories=[], add_harm_categories=True, rng=random.Random(0))
    parse = PARSERS["trl" if fmt == "rewardbench" else fmt]
    try:
        for line, obj in RecordReader(path):
            if isinstance(obj, InvalidRecord):
                raise EvaluationError(f"{path.name}:{line}: {obj.message}")
            try:
                if subsets is not None and isinstance(obj, dict):
                    obj = dict(obj)
                    subset = _take_subset(obj, required=fmt == "rewardbench")
                    if subset is not None:
                        subsets[line] = subset
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
    if p.margin is not None:  # a trl row's own margin: the strength of its label
        extra["margin"] = p.margin
    if side == "a":
        return LabelledPair(p.line, p.messages, p.a_text, p.b_text, label["a_safe"], label["b_safe"], extra)
    return LabelledPair(p.line, p.messages, p.b_text, p.a_text, label["b_safe"], label["a_safe"], extra)


def read_labelled(
    path: Path, fmt: str, *, cost: bool, skipped: dict, subsets: dict[int, str] | None = None
) -> Iterator[LabelledPair]:
    """trl, hh, safe-rlhf: one labelled pair a line (trl and hh name only the better response, which a cost
    model is scored against too)."""
    by_safety = cost and fmt == "safe-rlhf"
    for p in parsed_pairs(path, fmt, subsets):
        pair = _labelled(p, p.label, cost=by_safety)
        if pair is None:
            skipped["no_label"] = skipped.get("no_label", 0) + 1
            continue
        if subsets is not None and p.line in subsets:
            pair.extra["subset"] = subsets[p.line]
        yield pair


def read_raw(
    path: Path, *, cost: bool, skipped: dict, subsets: dict[int, str] | None = None
) -> Iterator[LabelledPair]:
    """Votes grouped by pair (canonical order = first arrival), each annotator's latest row counted, the label
    decided by the consensus rule."""
    firsts: dict[str, ParsedPair] = {}
    votes: dict[str, dict[str, tuple[int, dict]]] = {}
    for position, p in enumerate(parsed_pairs(path, "raw", subsets)):
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
        if subsets is not None and first.line in subsets:  # a pair's subset is its first row's
            pair.extra["subset"] = subsets[first.line]
        yield pair


def iter_pairs(
    path: str | Path, fmt: str, *, cost: bool = False, with_subsets: bool = False, skipped: dict
) -> Iterator[LabelledPair]:
    """The labelled pairs of the file one by one (a raw file's votes are grouped first); see read_pairs."""
    path = Path(path)
    if fmt == "generic":
        raise EvaluationError(
            f"{path.name}: 'generic' files carry no preference label, so there is nothing to evaluate against; "
            "use a trl, hh, safe-rlhf or raw file"
        )
    if fmt not in FORMATS and fmt not in SET_FORMATS:
        raise EvaluationError(f"unknown format {fmt!r}; expected one of {', '.join(SET_FORMATS)}")
    subsets: dict[int, str] | None = {} if with_subsets or fmt == "rewardbench" else None
    if fmt == "raw":
        return read_raw(path, cost=cost, skipped=skipped, subsets=subsets)
    return read_labelled(path, fmt, cost=cost, skipped=skipped, subsets=subsets)


def read_pairs(
    path: str | Path, fmt: str, *, cost: bool = False, with_subsets: bool = False
) -> tuple[list[LabelledPair], dict]:
    """All labelled pairs of the file (chosen = the safer response for a cost model), and what was left out;
    with `with_subsets`, each pair's `extra["subset"]` from its row's `subset`/`category` field."""
    skipped: dict = {}
    pairs = list(iter_pairs(path, fmt, cost=cost, with_subsets=with_subsets, skipped=skipped))
    if not pairs:
        raise EvaluationError(f"{Path(path).name}: no labelled pairs to evaluate")
    return pairs, skipped
