"""Consensus per comparison and axis: which side the counted votes chose, how strongly, how unanimously.

The core (`decide`, `decide_item`, `majority_bool`) works on plain `Vote` values so it is testable without a
database; `consensus_outcomes` streams a project's comparisons item by item in batches and feeds the core.
Definitions and why they are built this way: `consensus.md` next to this file.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from annotate.models import Comparison, Gold, Judgment
from insights.models import Adjudication
from projects.models import Annotator, Project

AXES = ("overall", "helpfulness", "harmlessness")
AGGREGATIONS = ("majority", "mean", "bt")
EXCLUDES = ("gold", "imported", "flagged")
ITEM_BATCH = 500

# Outcome statuses.
OK = "ok"
NO_CONSENSUS = "no_consensus"
TIE_OVERRIDE = "tie_override"
BELOW_MIN_AGREEMENT = "below_min_agreement"
EXCLUDED_GOLD = "excluded_gold"


class ConsensusError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Vote:
    """One counted judgment (latest revision), relative to the comparison's canonical order."""

    preference: int | None = None
    choice: str | None = None
    helpfulness: str | None = None
    harmlessness: str | None = None
    a_safe: bool | None = None
    b_safe: bool | None = None
    is_source: bool = False

    def on(self, axis: str) -> str | None:
        if axis == "overall":
            if self.choice is not None:
                return self.choice
            if self.preference is not None:
                return "a" if self.preference < 0 else "b" if self.preference > 0 else "tie"
            return None
        return self.helpfulness if axis == "helpfulness" else self.harmlessness

    def strength(self, axis: str) -> int | None:
        """|preference| on the overall axis; the A/B/tie questions carry no strength."""
        if axis != "overall" or self.preference is None:
            return None
        return abs(self.preference)


@dataclass(frozen=True, slots=True)
class GoldLabel:
    choice: str | None = None
    helpfulness: str | None = None
    harmlessness: str | None = None
    a_safe: bool | None = None
    b_safe: bool | None = None

    def on(self, axis: str) -> str | None:
        return {"overall": self.choice, "helpfulness": self.helpfulness, "harmlessness": self.harmlessness}[
            axis
        ]


@dataclass(slots=True)
class ConsensusRow:
    """The outcome for one comparison. `chosen` is 'a'/'b' when `status == "ok"`, else None."""

    comparison_id: int
    item_id: int
    chosen: str | None
    status: str
    margin: float
    votes: int
    non_tie: int
    agreement: float
    label_origin: str  # vote | source | gold | adjudicated
    a_safe: bool | None = None
    b_safe: bool | None = None
    safer: str | None = None
    excluded_judgments: Mapping[str, int] = field(default_factory=dict)


def majority_bool(values: Iterable[bool | None]) -> bool | None:
    """Strict majority of the non-null values; None on a tie or when there are none."""
    yes = no = 0
    for v in values:
        if v is True:
            yes += 1
        elif v is False:
            no += 1
    return True if yes > no else False if no > yes else None


def _side(v: Vote, axis: str) -> str | None:
    if axis == "overall":
        if v.choice is not None:
            return v.choice
        p = v.preference
        return None if p is None else "a" if p < 0 else "b" if p > 0 else "tie"
    return v.helpfulness if axis == "helpfulness" else v.harmlessness


def _tally(votes: Sequence[Vote], axis: str) -> dict:
    """One pass over the votes: everything `decide` needs."""
    n = a = b = 0
    mean_total = 0
    strength = {"a": [0, 0], "b": [0, 0]}  # side → [sum of known strengths, how many]
    safer_a = safer_b = 0
    a_yes = a_no = b_yes = b_no = 0
    all_source = bool(votes)
    overall = axis == "overall"
    for v in votes:
        side = _side(v, axis)
        if side is not None:
            n += 1
            if side == "a" or side == "b":
                if side == "a":
                    a += 1
                else:
                    b += 1
                known = abs(v.preference) if overall and v.preference is not None else None
                if known is not None:
                    acc = strength[side]
                    acc[0] += known
                    acc[1] += 1
                weight = known or 1
                mean_total += weight if side == "b" else -weight
        h = v.harmlessness
        if h == "a":
            safer_a += 1
        elif h == "b":
            safer_b += 1
        if v.a_safe is True:
            a_yes += 1
        elif v.a_safe is False:
            a_no += 1
        if v.b_safe is True:
            b_yes += 1
        elif v.b_safe is False:
            b_no += 1
        if not v.is_source:
            all_source = False
    return {
        "n": n,
        "a": a,
        "b": b,
        "mean": mean_total,
        "strength": strength,
        "safer": "a" if safer_a > safer_b else "b" if safer_b > safer_a else None,
        "a_safe": True if a_yes > a_no else False if a_no > a_yes else None,
        "b_safe": True if b_yes > b_no else False if b_no > b_yes else None,
        "all_source": all_source,
    }


def decide(
    votes: Sequence[Vote],
    *,
    comparison_id: int = 0,
    item_id: int = 0,
    axis: str = "overall",
    aggregation: str = "majority",
    gold: GoldLabel | None = None,
    adjudications: Mapping[str, str] | None = None,
    min_agreement: float | None = None,
    vote_side: str | None = None,
    use_vote_side: bool = False,
) -> ConsensusRow:
    """The consensus of one comparison from its counted votes and overrides (adjudication > gold > vote).

    majority: strict majority of the non-tie votes; mean: sign of the mean signed strength of the non-tie
    votes (unknown strength counts ±1). `use_vote_side` lets `decide_item` (Bradley–Terry) supply the side.
    """
    if axis not in AXES:
        raise ConsensusError(f"unknown axis {axis!r}; expected one of {', '.join(AXES)}")
    adjudications = adjudications or {}
    t = _tally(votes, axis)
    non_tie = t["a"] + t["b"]
    override = adjudications.get(axis)
    origin = "adjudicated"
    if override is None and gold is not None:
        override = gold.on(axis)
        origin = "gold"
    a_safe = gold.a_safe if gold is not None and gold.a_safe is not None else t["a_safe"]
    b_safe = gold.b_safe if gold is not None and gold.b_safe is not None else t["b_safe"]
    safer_label = adjudications.get("harmlessness") or (gold.harmlessness if gold else None)
    safer = t["safer"] if safer_label is None else safer_label if safer_label in ("a", "b") else None
    status = OK
    if override is not None:
        chosen = override if override in ("a", "b") else None
        if chosen is None:
            status = TIE_OVERRIDE
    else:
        if use_vote_side:
            chosen = vote_side
        elif aggregation == "mean":
            chosen = None if non_tie == 0 or t["mean"] == 0 else "b" if t["mean"] > 0 else "a"
        else:
            chosen = "a" if t["a"] > t["b"] else "b" if t["b"] > t["a"] else None
        if chosen is None:
            status = NO_CONSENSUS
        origin = "source" if t["all_source"] else "vote"
    agreement = 0.0
    margin = 0.0
    if chosen is not None:
        agreement = t[chosen] / non_tie if non_tie else 1.0
        total, known = t["strength"][chosen]
        margin = total / known / 3 if known else 0.0
        if override is None and min_agreement is not None and agreement < min_agreement:
            status = BELOW_MIN_AGREEMENT
            chosen = None
    return ConsensusRow(
        comparison_id=comparison_id,
        item_id=item_id,
        chosen=chosen,
        status=status,
        margin=margin,
        votes=t["n"],
        non_tie=non_tie,
        agreement=agreement,
        label_origin=origin,
        a_safe=a_safe,
        b_safe=b_safe,
        safer=safer,
    )


@dataclass(frozen=True, slots=True)
class ItemComparison:
    comparison_id: int
    response_a: int
    response_b: int
    votes: Sequence[Vote]
    gold: GoldLabel | None = None
    adjudications: Mapping[str, str] = field(default_factory=dict)


def bradley_terry(
    wins: Mapping[tuple[int, int], int], players: Iterable[int], *, iterations: int = 200, prior: float = 1.0
) -> dict[int, float]:
    """Bradley–Terry log-strengths by the MM algorithm (Hunter 2004).

    `wins[(i, j)]` is how often i beat j. Every player also gets `prior` virtual wins and losses against a
    virtual opponent of strength 1, which keeps the estimates finite when a player never lost (or never won).
    """
    players = sorted(set(players))
    p = {i: 1.0 for i in players}
    won: Counter[int] = Counter()
    games: Counter[tuple[int, int]] = Counter()
    for (i, j), n in wins.items():
        won[i] += n
        games[(min(i, j), max(i, j))] += n
    for _ in range(iterations):
        new = {}
        for i in players:
            denom = 2 * prior / (p[i] + 1.0)
            for (x, y), n in games.items():
                if x == i:
                    denom += n / (p[i] + p[y])
                elif y == i:
                    denom += n / (p[i] + p[x])
            new[i] = (won[i] + prior) / denom
        # Normalise the geometric mean to 1 (the scale is free).
        g = math.exp(sum(math.log(v) for v in new.values()) / len(new))
        delta = max(abs(new[i] / g - p[i]) for i in players)
        p = {i: new[i] / g for i in players}
        if delta < 1e-12:
            break
    return {i: math.log(v) for i, v in p.items()}


def decide_item(
    comparisons: Sequence[ItemComparison],
    *,
    item_id: int = 0,
    axis: str = "overall",
    aggregation: str = "majority",
    min_agreement: float | None = None,
) -> list[ConsensusRow]:
    """Outcomes for every comparison of one item. Under `bt` the item's responses are ranked by a
    Bradley–Terry fit over all the item's non-tie votes and each comparison takes the side ranked higher."""
    if aggregation not in AGGREGATIONS:
        raise ConsensusError(
            f"unknown aggregation {aggregation!r}; expected one of {', '.join(AGGREGATIONS)}"
        )
    if aggregation != "bt":
        return [
            decide(
                c.votes,
                comparison_id=c.comparison_id,
                item_id=item_id,
                axis=axis,
                aggregation=aggregation,
                gold=c.gold,
                adjudications=c.adjudications,
                min_agreement=min_agreement,
            )
            for c in comparisons
        ]
    wins: Counter[tuple[int, int]] = Counter()
    players: set[int] = set()
    for c in comparisons:
        players.update((c.response_a, c.response_b))
        for v in c.votes:
            side = v.on(axis)
            if side == "a":
                wins[(c.response_a, c.response_b)] += 1
            elif side == "b":
                wins[(c.response_b, c.response_a)] += 1
    scores = bradley_terry(wins, players) if wins else {}
    rows = []
    for c in comparisons:
        sa, sb = scores.get(c.response_a, 0.0), scores.get(c.response_b, 0.0)
        side = None if abs(sa - sb) < 1e-9 else "a" if sa > sb else "b"
        rows.append(
            decide(
                c.votes,
                comparison_id=c.comparison_id,
                item_id=item_id,
                axis=axis,
                aggregation="bt",
                gold=c.gold,
                adjudications=c.adjudications,
                min_agreement=min_agreement,
                vote_side=side,
                use_vote_side=True,
            )
        )
    return rows


# --- the database side ---------------------------------------------------------------------------------

VOTE_FIELDS = (
    "comparison_id",
    "is_source",
    "imported",
    "is_gold",
    "annotator__flagged",
    "annotator__kind",
    "preference",
    "choice",
    "helpfulness",
    "harmlessness",
    "a_safe",
    "b_safe",
)


def normalise_exclude(exclude: Iterable[str] | str | None) -> frozenset[str]:
    if exclude is None:
        return frozenset()
    if isinstance(exclude, str):
        exclude = [e for e in exclude.split(",")]
    out = frozenset(e.strip() for e in exclude if e and e.strip())
    unknown = out - set(EXCLUDES)
    if unknown:
        raise ConsensusError(
            f"unknown exclude {', '.join(sorted(unknown))}; expected some of {', '.join(EXCLUDES)}"
        )
    return out


def check_options(axis: str, aggregation: str, min_agreement: float | None) -> None:
    if axis not in AXES:
        raise ConsensusError(f"unknown axis {axis!r}; expected one of {', '.join(AXES)}")
    if aggregation not in AGGREGATIONS:
        raise ConsensusError(
            f"unknown aggregation {aggregation!r}; expected one of {', '.join(AGGREGATIONS)}"
        )
    if min_agreement is not None and not 0 <= min_agreement <= 1:
        raise ConsensusError(f"min_agreement must lie in 0..1, not {min_agreement}")


def live_comparisons(project: Project):
    return Comparison.objects.filter(project=project, deleted_at__isnull=True, item__deleted_at__isnull=True)


def _item_batches(project: Project, batch: int):
    """(comparisons subquery, rows) of whole items, `batch` items at a time; rows are
    (comparison_id, item_id, response_a_id, response_b_id)."""
    last = 0
    qs = live_comparisons(project)
    # The batch bounds come from the comparisons alone: with the item join PostgreSQL merged along the item
    # primary key from its first row on every batch (quadratic: 10x slower per comparison at 1M than at
    # 250k judgments). A deleted item's comparisons still bound a batch; `in_batch` leaves them out.
    bounds = Comparison.objects.filter(project=project, deleted_at__isnull=True)
    while True:
        item_ids = list(
            bounds.filter(item_id__gt=last)
            .order_by("item_id")
            .values_list("item_id", flat=True)
            .distinct()[:batch]
        )
        if not item_ids:
            return
        in_batch = qs.filter(item_id__gt=last, item_id__lte=item_ids[-1])
        rows = list(
            in_batch.order_by("item_id", "id").values_list("id", "item_id", "response_a_id", "response_b_id")
        )
        last = item_ids[-1]
        yield in_batch.values("id"), rows


def consensus_outcomes(
    project: Project,
    *,
    axis: str = "overall",
    aggregation: str = "majority",
    exclude: Iterable[str] | str | None = frozenset(),
    min_agreement: float | None = None,
    batch: int = ITEM_BATCH,
) -> Iterator[ConsensusRow]:
    """Every live comparison's outcome (also the ones without consensus), item by item, in batches."""
    check_options(axis, aggregation, min_agreement)
    exclude = normalise_exclude(exclude)
    for ids, rows in _item_batches(project, batch):
        golds = {
            g[0]: GoldLabel(*g[1:])
            for g in Gold.objects.filter(comparison_id__in=ids).values_list(
                "comparison_id", "choice", "helpfulness", "harmlessness", "a_safe", "b_safe"
            )
        }
        adjudications: dict[int, dict[str, str]] = {}
        for cid, ax, choice in Adjudication.objects.filter(comparison_id__in=ids).values_list(
            "comparison_id", "axis", "choice"
        ):
            adjudications.setdefault(cid, {})[ax] = choice
        votes: dict[int, list[Vote]] = {}
        excluded: dict[int, Counter[str]] = {}
        for cid, is_source, imported, is_gold, flagged, kind, *answers in (
            Judgment.objects.filter(comparison_id__in=ids).order_by().values_list(*VOTE_FIELDS)
        ):
            # A gold comparison is one with a Gold row (as in insights.agreement): its votes are gold answers,
            # whoever cast them, also imported `raw` votes. A model judge's labels are never human preference
            # data: they stay out of every snapshot (its agreement with the humans is on the dashboard).
            reason = (
                "gold_item"
                if is_gold or cid in golds
                else "model_judge"
                if kind == Annotator.Kind.MODEL
                else "imported"
                if imported and "imported" in exclude
                else "flagged"
                if flagged and "flagged" in exclude
                else None
            )
            if reason:
                excluded.setdefault(cid, Counter())[reason] += 1
                continue
            votes.setdefault(cid, []).append(Vote(*answers, is_source=is_source))
        by_item: dict[int, list[ItemComparison]] = {}
        for cid, item_id, ra, rb in rows:
            by_item.setdefault(item_id, []).append(
                ItemComparison(cid, ra, rb, votes.get(cid, ()), golds.get(cid), adjudications.get(cid, {}))
            )
        for item_id, comparisons in by_item.items():
            if "gold" in exclude:
                kept = [c for c in comparisons if c.gold is None]
                for c in comparisons:
                    if c.gold is not None:
                        yield ConsensusRow(
                            c.comparison_id, item_id, None, EXCLUDED_GOLD, 0.0, 0, 0, 0.0, "gold"
                        )
                comparisons = kept
            for row in decide_item(
                comparisons, item_id=item_id, axis=axis, aggregation=aggregation, min_agreement=min_agreement
            ):
                row.excluded_judgments = excluded.get(row.comparison_id, {})
                yield row


def consensus_for_project(
    project: Project,
    *,
    axis: str = "overall",
    aggregation: str = "majority",
    exclude: Iterable[str] | str | None = frozenset(),
    min_agreement: float | None = None,
) -> Iterator[ConsensusRow]:
    """The comparisons of `project` that have a consensus on `axis`, streamed (see `consensus.md`)."""
    for row in consensus_outcomes(
        project, axis=axis, aggregation=aggregation, exclude=exclude, min_agreement=min_agreement
    ):
        if row.status == OK:
            yield row
