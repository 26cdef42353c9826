"""Every agreement figure of Arbiter, gathered from the database and computed by `insights.metrics`.

`load_crowd(project, comparisons=…, exclude=…)` runs the queries (judgments; harm categories of unsafe
responses; first revisions on gold) and returns plain arrays; `crowd_figures(data, …)` turns them into the
figures every surface shows: `project_figures(project)` (the object `manage.py agreement --json` prints, the
dashboard caches and the API returns) adds the per-annotator figures, and `comparison_figures(project,
comparison_ids, exclude)` gives a dataset card the same figures on a snapshot's comparisons. What counts, and
how each question is built: `agreement.md`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.db import connection, transaction
from django.db.models import Count, Q, TextField
from django.db.models.functions import Cast

from annotate.models import Assignment, Comparison, Judgment, JudgmentRevision, Ranking
from insights import metrics as M
from insights import rank_metrics as R
from projects.models import Annotator, Membership, Project

CHOICES = ("a", "tie", "b")  # codes 0, 1, 2 = metrics.A, TIE, B
CHOICE_CODE = {c: i for i, c in enumerate(CHOICES)}
MISSING = -1
N_RESAMPLES = 1000
SEED = 0
MIN_SHARED = 20


def choice_of(choice: str | None, preference: int | None) -> str | None:
    """The A / tie / B answer: the stored choice, else the sign of the preference."""
    if choice is not None:
        return choice
    if preference is None:
        return None
    return "a" if preference < 0 else "b" if preference > 0 else "tie"


def _code(values: Sequence[str | None]) -> np.ndarray:
    """A / tie / B answers to codes 0 / 1 / 2, -1 when missing (vectorised: an object-array compare per code)."""
    arr = np.array(values, dtype=object)
    out = np.full(arr.shape, MISSING, dtype=np.int64)
    for value, code in CHOICE_CODE.items():
        out[arr == value] = code
    return out


def _bool_code(values: Sequence[bool | None]) -> np.ndarray:
    """Safety answers: 0 = safe, 1 = unsafe, -1 = not answered."""
    arr = np.array(values, dtype=object)
    out = np.full(arr.shape, MISSING, dtype=np.int64)
    out[arr == True] = 0  # noqa: E712 - element-wise comparison of an object array
    out[arr == False] = 1  # noqa: E712
    return out


@dataclass
class CrowdData:
    """Every non-source judgment of a project's live comparisons, as parallel arrays (one row per judgment).

    `unit` indexes `unit_ids` (comparisons with at least one crowd judgment outside gold: comparisons
    without a `Gold` row) and is -1 on rows given on a gold comparison; `rater` indexes `annotators`.
    """

    unit_ids: list[int]
    annotators: list[tuple[int, str]]  # (annotator id, name), in rater-code order
    unit: np.ndarray
    rater: np.ndarray
    on_gold: np.ndarray
    choice: np.ndarray
    preference: np.ndarray  # -3..3, or a value below -3 when unknown
    helpfulness: np.ndarray
    harmlessness: np.ndarray
    a_safe: np.ndarray
    b_safe: np.ndarray
    shown_left: np.ndarray  # choice codes: 0 = A shown left, 2 = B, -1 unknown
    time_ms: np.ndarray
    categories: dict[str, tuple[np.ndarray, np.ndarray]]  # name -> (rows marked on A, rows marked on B)
    gold_rater: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    gold_value: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    gold_answer: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    sources: list[tuple[int, str, str | None]] = field(default_factory=list)  # (unit, source name, choice)
    # Model judges (annotators of kind `model`) are kept out of every row above: (unit, judge name, choice).
    model_judges: list[tuple[int, str, str | None]] = field(default_factory=list)
    # A ranking project's crowd rankings (`load_rankings`), units its items; None for a pairs project.
    rankings: R.Rankings | None = None

    @property
    def n_units(self) -> int:
        return len(self.unit_ids)

    @property
    def n_raters(self) -> int:
        return len(self.annotators)

    @property
    def crowd(self) -> np.ndarray:
        """Rows that count toward agreement: outside gold."""
        return ~self.on_gold

    def ratings(self, values: np.ndarray, n_categories: int) -> M.Ratings:
        """A comparison-level question: crowd rows with an answer (`values` >= 0)."""
        keep = self.crowd & (values >= 0)
        return M.Ratings(
            self.unit[keep],
            self.rater[keep],
            values[keep],
            n_categories=n_categories,
            n_units=self.n_units,
            n_raters=self.n_raters,
        )

    def side_ratings(self, a_values: np.ndarray, b_values: np.ndarray, n_categories: int) -> M.Ratings:
        """A per-response question: unit 2u is response A of comparison u, 2u + 1 response B."""
        keep_a = self.crowd & (a_values >= 0)
        keep_b = self.crowd & (b_values >= 0)
        return M.Ratings(
            np.concatenate([2 * self.unit[keep_a], 2 * self.unit[keep_b] + 1]),
            np.concatenate([self.rater[keep_a], self.rater[keep_b]]),
            np.concatenate([a_values[keep_a], b_values[keep_b]]),
            n_categories=n_categories,
            n_units=2 * self.n_units,
            n_raters=self.n_raters,
        )

    def choice_ratings(self) -> M.Ratings:
        return self.ratings(self.choice, 3)

    def preference_ratings(self) -> M.Ratings:
        """The 7-point preference coded 0..6 for -3..+3, where known."""
        return self.ratings(np.where(self.preference >= -3, self.preference + 3, MISSING), 7)

    def category_values(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Per row and side: 1 when the response was marked with harm category `name`, 0 when it was
        judged (safe, or unsafe without it), -1 when its safety was not answered."""
        on_a, on_b = self.categories.get(name, (np.empty(0, np.int64), np.empty(0, np.int64)))
        a = np.where(self.a_safe >= 0, 0, MISSING)
        b = np.where(self.b_safe >= 0, 0, MISSING)
        a[on_a] = 1
        b[on_b] = 1
        return a, b

    def question_specs(
        self, harm_categories: Sequence[str]
    ) -> dict[str, tuple[Callable[[], M.Ratings], bool, bool]]:
        """name -> (a function that builds its ratings, ordinal, per response): the one set of question names of
        every surface. `overall` is the A / tie / B choice, `preference` the 7-point answer where known (ordinal).
        Built one at a time by whoever reads them, so a project of a million votes never holds every question's
        ratings at once."""
        out: dict[str, tuple[Callable[[], M.Ratings], bool, bool]] = {
            "overall": (self.choice_ratings, False, False),
            "preference": (self.preference_ratings, True, False),
            "helpfulness": (lambda: self.ratings(self.helpfulness, 3), False, False),
            "harmlessness": (lambda: self.ratings(self.harmlessness, 3), False, False),
            "safety": (lambda: self.side_ratings(self.a_safe, self.b_safe, 2), False, True),
        }
        for name in [*harm_categories, *sorted(set(self.categories) - set(harm_categories))]:
            out[f"harm:{name}"] = (
                lambda name=name: self.side_ratings(*self.category_values(name), 2),
                False,
                True,
            )
        return out


JUDGMENT_FIELDS = (
    "comparison_id",
    "annotator_id",
    "is_source",
    "comparison__gold__id",
    "choice",
    "preference",
    "helpfulness",
    "harmlessness",
    "a_safe",
    "b_safe",
    "id",
    "shown_left",
    "time_spent_ms",
)


EXCLUSIONS = ("flagged", "imported")


def live_judgments(project: Project, *, comparisons=None, exclude: Sequence[str] = ()):
    """The project's judgments on live comparisons; only on `comparisons` (ids, or a values("…id")
    queryset) when given; `exclude` leaves out judgments of flagged annotators and/or imported ones
    (a snapshot's exclusions)."""
    unknown = set(exclude) - {*EXCLUSIONS, "gold"}
    if unknown:
        raise ValueError(f"unknown exclusion(s) {sorted(unknown)}; expected some of {EXCLUSIONS + ('gold',)}")
    qs = Judgment.objects.filter(
        project=project, comparison__deleted_at__isnull=True, comparison__item__deleted_at__isnull=True
    )
    if comparisons is not None:
        qs = qs.filter(comparison_id__in=comparisons)
    if "flagged" in exclude:
        qs = qs.filter(annotator__flagged=False)
    if "imported" in exclude:
        qs = qs.filter(imported=False)
    return qs


CHUNK_ROWS = 20_000  # judgments read and turned into arrays at a time: memory is the arrays, not the rows


def _chunks(queryset, fields: Sequence[str]):
    """`queryset`'s rows (values_list of `fields`) in lists of CHUNK_ROWS, read through a server-side cursor."""
    batch: list[tuple] = []
    for row in queryset.order_by().values_list(*fields).iterator(chunk_size=CHUNK_ROWS):
        batch.append(row)
        if len(batch) == CHUNK_ROWS:
            yield batch
            batch = []
    if batch:
        yield batch


def _crowd_arrays(every, judges: set[int]) -> tuple[dict[str, np.ndarray], list[tuple]]:
    """The crowd rows of `every` as column arrays, and the few other rows (source labels and model judges'
    votes outside gold) as (comparison id, annotator id, is_source, choice). Read a chunk at a time, so a
    project of a million votes costs its arrays (about 100 bytes a vote), never a Python row each."""
    parts: dict[str, list[np.ndarray]] = {name: [] for name in _COLUMNS}
    others: list[tuple] = []
    for chunk in _chunks(every, JUDGMENT_FIELDS):
        crowd = []
        for r in chunk:
            if r[2] or r[1] in judges:
                if r[3] is None:
                    others.append((r[0], r[1], r[2], choice_of(r[4], r[5])))
            else:
                crowd.append(r)
        if not crowd:
            continue
        c = list(zip(*crowd, strict=True))
        n = len(crowd)
        parts["cid"].append(np.array(c[0], dtype=np.int64))
        parts["aid"].append(np.array(c[1], dtype=np.int64))
        # A gold comparison is one with a Gold row, whatever the judgment's own is_gold says (DESIGN.md).
        parts["on_gold"].append(np.fromiter((g is not None for g in c[3]), dtype=bool, count=n))
        parts["choice"].append(_code([choice_of(ch, p) for ch, p in zip(c[4], c[5], strict=True)]))
        parts["preference"].append(
            np.fromiter((-9 if p is None else p for p in c[5]), dtype=np.int64, count=n)
        )
        parts["helpfulness"].append(_code(c[6]))
        parts["harmlessness"].append(_code(c[7]))
        parts["a_safe"].append(_bool_code(c[8]))
        parts["b_safe"].append(_bool_code(c[9]))
        parts["jid"].append(np.array(c[10], dtype=np.int64))
        parts["shown_left"].append(_code(c[11]))
        parts["time_ms"].append(
            np.fromiter((np.nan if t is None else t for t in c[12]), dtype=np.float64, count=n)
        )
    empty = {"on_gold": bool, "time_ms": np.float64}
    columns = {
        name: np.concatenate(chunks) if chunks else np.empty(0, dtype=empty.get(name, np.int64))
        for name, chunks in parts.items()
    }
    return columns, others


_COLUMNS = (
    "cid", "aid", "on_gold", "choice", "preference", "helpfulness", "harmlessness", "a_safe", "b_safe", "jid",
    "shown_left", "time_ms",
)  # fmt: skip


def _rows_of(jids: np.ndarray, wanted: list[int]) -> np.ndarray:
    """The rows of judgment ids `wanted` in `jids` (ids not there, written since `jids` was read, are left out)."""
    order = np.argsort(jids, kind="stable")
    ordered = jids[order]
    want = np.array(wanted, dtype=np.int64)
    pos = np.clip(np.searchsorted(ordered, want), 0, max(len(ordered) - 1, 0))
    found = ordered[pos] == want if len(ordered) else np.zeros(len(want), dtype=bool)
    return np.sort(order[pos[found]])


def load_rankings(project: Project, *, comparisons=None, exclude: Sequence[str] = ()) -> R.Rankings | None:
    """A ranking project's crowd rankings (None for a pairs project): every non-source ranking of a human
    annotator on a live item, less those given on a gold item (`Ranking.is_gold`, or an item with a `Gold` row
    on one of its comparisons), on the items of `comparisons` when given, less what `exclude` names (as
    `live_judgments`). Units: the items with at least one such ranking, in id order."""
    if project.task_kind != Project.TaskKind.RANKING:
        return None
    qs = Ranking.objects.filter(
        project=project, is_source=False, is_gold=False, item__deleted_at__isnull=True
    )
    qs = qs.exclude(annotator__kind=Annotator.Kind.MODEL).exclude(
        item__in=Comparison.objects.filter(project=project, gold__isnull=False).values("item_id")
    )
    if comparisons is not None:
        qs = qs.filter(item__in=Comparison.objects.filter(id__in=comparisons).values("item_id"))
    if "flagged" in exclude:
        qs = qs.filter(annotator__flagged=False)
    if "imported" in exclude:
        qs = qs.filter(imported=False)
    rows = sorted(qs.order_by().values_list("item_id", "annotator_id", "tiers"))
    units = sorted({item for item, _, _ in rows})
    rankings, _, _ = R.Rankings.from_tiers(rows, units=units)
    return rankings


@contextmanager
def _planned_for_every_row():
    """A transaction whose server-side cursors (`QuerySet.iterator`) are planned for their whole result.

    PostgreSQL plans a cursor for its first tenth (`cursor_tuple_fraction` = 0.1): nested loops instead of hash
    joins, which cost three times the database's CPU when, as here, every row is read (250,000 votes: 1.3 s
    against 0.45 s for the same query without a cursor). The setting is local to this transaction."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL cursor_tuple_fraction = 1.0")
        yield


def load_crowd(project: Project, *, comparisons=None, exclude: Sequence[str] = ()) -> CrowdData:
    """The arrays every figure is computed from (see `agreement.md`: what counts), over the project's live
    comparisons or only `comparisons`, less the judgments `exclude` names (see `live_judgments`)."""
    with _planned_for_every_row():
        return _load_crowd(project, comparisons=comparisons, exclude=exclude)


def _load_crowd(project: Project, *, comparisons, exclude: Sequence[str]) -> CrowdData:
    every = live_judgments(project, comparisons=comparisons, exclude=exclude)
    names, judges = {}, set()
    for aid, name, kind in Annotator.objects.filter(project=project).values_list("id", "name", "kind"):
        names[aid] = name
        if kind == Annotator.Kind.MODEL:
            judges.add(aid)
    judgments = every.exclude(annotator_id__in=judges) if judges else every
    col, others = _crowd_arrays(every, judges)
    on_gold = col["on_gold"]
    n = len(on_gold)
    # Units in comparison-id order, raters in annotator-id order: stable whatever order the rows came in.
    unit_ids_arr, unit_codes = np.unique(col["cid"][~on_gold], return_inverse=True)
    unit = np.full(n, MISSING, dtype=np.int64)
    unit[~on_gold] = unit_codes.reshape(-1)
    rater_ids, rater = np.unique(col["aid"], return_inverse=True)
    rater = rater.reshape(-1).astype(np.int64)
    unit_index = {int(cid): i for i, cid in enumerate(unit_ids_arr.tolist())}
    rater_index = {int(aid): i for i, aid in enumerate(rater_ids.tolist())}
    # Harm categories are read only where a response was marked unsafe (a safe response has none): decoding
    # every row's JSON lists would cost more than all the figures together.
    marked_ids: dict[str, tuple[list[int], list[int]]] = {}
    marked = (
        judgments.filter(is_source=False)
        .filter(Q(a_safe=False) | Q(b_safe=False))
        .order_by()
        .values_list("id", Cast("a_harm_categories", TextField()), Cast("b_harm_categories", TextField()))
    )
    for jid, a_cats, b_cats in marked.iterator(chunk_size=CHUNK_ROWS):
        for side, text in ((0, a_cats), (1, b_cats)):
            if text and text != "[]":  # as text, so the many empty lists are never decoded
                for name in json.loads(text):
                    marked_ids.setdefault(name, ([], []))[side].append(jid)
    data = CrowdData(
        unit_ids=list(unit_index),
        annotators=[(aid, names.get(aid, str(aid))) for aid in rater_index],
        unit=unit,
        rater=rater,
        on_gold=on_gold,
        choice=col["choice"],
        preference=col["preference"],
        helpfulness=col["helpfulness"],
        harmlessness=col["harmlessness"],
        a_safe=col["a_safe"],
        b_safe=col["b_safe"],
        shown_left=col["shown_left"],
        time_ms=col["time_ms"],
        categories={
            name: (_rows_of(col["jid"], a), _rows_of(col["jid"], b)) for name, (a, b) in marked_ids.items()
        },
    )
    # Gold accuracy compares the FIRST submitted revision with the gold choice (DESIGN.md).
    gold_rows = (
        JudgmentRevision.objects.filter(
            number=1,
            judgment__in=judgments.filter(is_source=False, comparison__gold__isnull=False).values("id"),
        )
        .order_by()
        .values_list("judgment__annotator_id", "choice", "preference", "judgment__comparison__gold__choice")
    )
    g_rater, g_answer, g_value = [], [], []
    for aid, choice, pref, gold in gold_rows:
        g_rater.append(rater_index.setdefault(aid, len(rater_index)))
        g_answer.append(CHOICE_CODE.get(choice_of(choice, pref), MISSING))
        g_value.append(CHOICE_CODE[gold])
    if len(rater_index) > len(data.annotators):  # a first revision whose judgment is not loaded
        data.annotators = [(aid, names.get(aid, str(aid))) for aid in rater_index]
    data.gold_rater = np.array(g_rater, dtype=np.int64)
    data.gold_answer = np.array(g_answer, dtype=np.int64)
    data.gold_value = np.array(g_value, dtype=np.int64)
    data.sources = [
        (unit_index[cid], names.get(aid, str(aid)), choice)
        for cid, aid, is_source, choice in others
        if is_source and cid in unit_index
    ]
    data.model_judges = [
        (unit_index[cid], names[aid], choice)
        for cid, aid, is_source, choice in others
        if not is_source and cid in unit_index
    ]
    data.rankings = load_rankings(project, comparisons=comparisons, exclude=exclude)
    return data


# --- figures ------------------------------------------------------------------------------------------


def _num(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _ci(bounds: tuple[float, float] | None) -> list[float] | None:
    return None if bounds is None else [float(bounds[0]), float(bounds[1])]


def question_figures(
    questions: dict[str, tuple[Callable[[], M.Ratings], bool, bool]],
    n_units: int,
    *,
    n_resamples: int = N_RESAMPLES,
    seed: int = SEED,
    extra_columns: np.ndarray | None = None,
) -> tuple[dict[str, dict[str, Any]], np.ndarray | None]:
    """Point figures and bootstrap 95% intervals of every question (`CrowdData.question_specs`), from ONE set
    of resamples of the `n_units` comparisons: every question's statistics (and `extra_columns`, per
    comparison) are multiplied by the same resampling weights. For a comparison-level question each figure
    equals `metrics.<figure>(ratings)` and each interval `metrics.bootstrap_ci(ratings, metric, n_resamples,
    seed)`. A per-response question's statistics are summed per comparison, so a drawn comparison brings both
    of its responses (a cluster bootstrap). Each question's ratings are built, reduced to their statistics and
    dropped before the next is built.

    Returns the figures (intervals as lists) and the resampled sums of `extra_columns` (n_resamples, k) or None.
    """
    prepared = []
    for name, (build, ordinal, per_response) in questions.items():
        r = build()
        layout, stats = M.question_stats(r, ordinal=ordinal)
        if per_response:
            stats = stats.reshape(n_units, 2, stats.shape[1]).sum(axis=1)
        prepared.append((name, M.rating_counts(r), ordinal, layout, stats))
        del r
    blocks = [p[4] for p in prepared]
    if extra_columns is not None:
        blocks.append(extra_columns)
    resampled = M.resampled_blocks(blocks, n_resamples, seed) if blocks else np.zeros((n_resamples, 0))
    out: dict[str, dict[str, Any]] = {}
    start = 0
    for name, counts, ordinal, layout, stats in prepared:
        stop = start + stats.shape[1]
        fig = M.figures_from_sums(counts, layout, stats, resampled[:, start:stop], ordinal=ordinal)
        fig["ci"] = {metric: _ci(bounds) for metric, bounds in fig["ci"].items()}
        out[name] = fig
        start = stop
    extra = resampled[:, start:] if extra_columns is not None else None
    return out, extra


def _source_columns(data: CrowdData, side: np.ndarray) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Per comparison: [source labels with a crowd consensus, those equal to it]; and per source name."""
    cols = np.zeros((data.n_units, 2))
    by_name: dict[str, list[int]] = {}
    for u, name, choice in data.sources:
        if side[u] == M.NO_CONSENSUS or choice is None:
            continue
        hit = int(CHOICE_CODE[choice] == side[u])
        cols[u, 0] += 1
        cols[u, 1] += hit
        counts = by_name.setdefault(name, [0, 0])
        counts[0] += 1
        counts[1] += hit
    rows = [
        {"annotator": name, "n": n, "agreement": hits / n if n else None}
        for name, (n, hits) in sorted(by_name.items())
    ]
    return cols, rows


def _kappa(r: M.Ratings, a: int, b: int, min_shared: int) -> tuple[int, float | None]:
    """Shared units and Cohen's κ of raters a < b in `r` (0 and None below `min_shared`)."""
    for x, y, n, k in M.cohen_kappa_pairs(r, min_shared=min_shared):
        if (x, y) == (a, b):
            return int(n), _num(k)
    return 0, None


def model_vs_human(data: CrowdData, choice_r: M.Ratings, side: np.ndarray) -> list[dict[str, Any]]:
    """Each model judge's A / tie / B choices beside the humans': Cohen's κ and agreement against the human
    majority (`side`, on the comparisons that have one), and Cohen's κ against each human where they share
    at least `MIN_SHARED` comparisons (as the human pairs). Humans only on the other side: `choice_r` holds no
    model judge."""
    h = data.n_raters
    out = []
    for name in sorted({judge for _, judge, _ in data.model_judges}):
        mine = [(u, CHOICE_CODE[c]) for u, judge, c in data.model_judges if judge == name and c is not None]
        units = np.array([u for u, _ in mine], dtype=np.int64)
        values = np.array([v for _, v in mine], dtype=np.int64)
        has = side[units] != M.NO_CONSENSUS
        k = int(has.sum())
        vs_majority = M.Ratings(
            np.concatenate([units[has], units[has]]),
            np.repeat(np.array([0, 1], dtype=np.int64), k),
            np.concatenate([values[has], side[units[has]].astype(np.int64)]),
            n_categories=3,
            n_units=data.n_units,
            n_raters=2,
        )
        n, kappa = _kappa(vs_majority, 0, 1, 1)
        shared = np.isin(choice_r.unit, units)
        with_humans = M.Ratings(
            np.concatenate([choice_r.unit[shared], units]),
            np.concatenate([choice_r.rater[shared], np.full(units.size, h, dtype=np.int64)]),
            np.concatenate([choice_r.value[shared], values]),
            n_categories=3,
            n_units=data.n_units,
            n_raters=h + 1,
        )
        humans = [
            {"annotator": data.annotators[a][1], "n": int(pair_n), "cohen_kappa": _num(pair_k)}
            for a, b, pair_n, pair_k in M.cohen_kappa_pairs(with_humans, min_shared=MIN_SHARED)
            if b == h
        ]
        out.append(
            {
                "judge": name,
                "judgments": len(mine),
                "majority_n": n,
                "majority_agreement": _num(np.mean(values[has] == side[units[has]])) if k else None,
                "majority_kappa": kappa,
                "humans": sorted(humans, key=lambda row: row["annotator"]),
            }
        )
    return out


def per_annotator(project: Project, data: CrowdData, choice_r: M.Ratings) -> list[dict[str, Any]]:
    n = data.n_raters
    loo, loo_n = M.agreement_with_loo_consensus(choice_r)
    gold_acc, gold_n = M.gold_accuracy(data.gold_rater, data.gold_answer, data.gold_value, n)
    bias, bias_n = M.left_bias(data.rater, data.choice, data.shown_left, n)
    med, timed = M.median_seconds(data.rater, data.time_ms, n)
    times = data.time_ms[np.isfinite(data.time_ms)]
    project_median = float(np.median(times)) / 1000.0 if times.size else None
    threshold = project.auto_pause_gold_threshold
    flags = M.flag_annotators(
        med,
        timed,
        gold_acc,
        gold_n,
        project_median_s=project_median,
        min_gold_accuracy=threshold if threshold is not None else 0.7,
        min_gold=project.auto_pause_min_gold,
    )
    judged = np.bincount(data.rater, minlength=n)
    ids = [aid for aid, _ in data.annotators]
    info = {
        a["id"]: a
        for a in Annotator.objects.filter(id__in=ids).values("id", "flagged", "user_id", "imported", "kind")
    }
    paused = dict(
        Membership.objects.filter(project=project, user_id__in=[a["user_id"] for a in info.values()])
        .exclude(paused_reason="")
        .values_list("user_id", "paused_reason")
    )
    out = []
    for i, (aid, name) in enumerate(data.annotators):
        a = info.get(aid, {})
        out.append(
            {
                "annotator": name,
                "annotator_id": aid,
                "judgments": int(judged[i]) if i < judged.size else 0,
                "agreement_with_consensus": _num(loo[i]),
                "consensus_counted": int(loo_n[i]),
                "gold_accuracy": _num(gold_acc[i]),
                "gold_answers": int(gold_n[i]),
                "left_bias": _num(bias[i]),
                "left_bias_counted": int(bias_n[i]),
                "median_seconds": _num(med[i]),
                "too_fast": bool(flags["too_fast"][i]),
                "low_gold_accuracy": bool(flags["low_gold_accuracy"][i]),
                "flagged": bool(a.get("flagged", False)),
                "imported": bool(a.get("imported", False)),
                "paused_reason": paused.get(a.get("user_id"), ""),
            }
        )
    out.sort(key=lambda row: row["annotator"])
    return out


def _pairs(data: CrowdData, choice_r: M.Ratings, pref_r: M.Ratings) -> list[dict[str, Any]]:
    """Cohen's kappa per annotator pair: unweighted on the A / tie / B choice and quadratic-weighted on the
    7-point preference, each where the pair shares at least `MIN_SHARED` comparisons on that question."""
    names = [name for _, name in data.annotators]
    pairs: dict[tuple[int, int], dict[str, Any]] = {}
    for key, n_key, r, weights in (
        ("cohen_kappa", "n", choice_r, None),
        ("weighted_kappa", "weighted_n", pref_r, "quadratic"),
    ):
        for a, b, n, k in M.cohen_kappa_pairs(r, min_shared=MIN_SHARED, weights=weights):
            row = pairs.setdefault(
                (a, b),
                {
                    "a": names[a],
                    "b": names[b],
                    "n": 0,
                    "cohen_kappa": None,
                    "weighted_n": 0,
                    "weighted_kappa": None,
                },
            )
            row[n_key], row[key] = int(n), _num(k)
    return [pairs[key] for key in sorted(pairs)]


def crowd_figures(
    data: CrowdData, harm_categories: Sequence[str], *, n_resamples: int = N_RESAMPLES, seed: int = SEED
) -> dict[str, Any]:
    """Every crowd agreement figure of `data`: per question with bootstrap intervals, source labels vs the
    crowd, annotator pairs. What the dashboard, `manage.py agreement`, the API and the dataset card show."""
    questions = data.question_specs(harm_categories)
    choice_r = data.choice_ratings()
    side = M.consensus(choice_r)
    source_cols, by_source = _source_columns(data, side)
    figs, source_resampled = question_figures(
        questions, data.n_units, n_resamples=n_resamples, seed=seed, extra_columns=source_cols
    )
    n_src, hits = source_cols.sum(axis=0)
    share = source_resampled[:, 1] / np.where(source_resampled[:, 0] > 0, source_resampled[:, 0], np.nan)
    crowd = data.crowd
    figures = {
        "judgments": int(crowd.sum()),
        "comparisons": data.n_units,
        "annotators": int(np.unique(data.rater[crowd]).size),
        "questions": figs,
        "source_vs_crowd": {
            "n": int(n_src),
            "agreement": _num(hits / n_src) if n_src else None,
            "ci": _ci(M.percentile_interval(share, 0.95)) if n_src else None,
            "by_source": by_source,
        },
        "pairs": _pairs(data, choice_r, data.preference_ratings()),
        "model_vs_human": model_vs_human(data, choice_r, side),
        "resamples": n_resamples,
        "seed": seed,
    }
    if data.rankings is not None:  # a ranking project: the rankings' own figures, items resampled
        figures["ranking"] = R.ranking_figures(data.rankings, n_resamples=n_resamples, seed=seed)
    return figures


def chosen_by_figures(project: Project, data: CrowdData, choice_r: M.Ratings) -> dict[str, dict[str, Any]]:
    """Per queue order that chose the assignments (`Assignment.chosen_by`): assignments, submitted ones, and
    the crowd A / tie / B answers given on them that meet a majority of the comparison's other answers
    (leave-one-out, as `agreement_with_consensus`): `consensus_counted` and `agreement_with_consensus`."""
    out = {
        row["chosen_by"]: {
            "assignments": row["n"],
            "submitted": row["submitted"],
            "consensus_counted": 0,
            "agreement_with_consensus": None,
        }
        for row in Assignment.objects.filter(project=project)
        .values("chosen_by")
        .annotate(n=Count("pk"), submitted=Count("pk", filter=Q(status=Assignment.Status.SUBMITTED)))
        .order_by("chosen_by")
    }
    units = {cid: i for i, cid in enumerate(data.unit_ids)}
    raters = {aid: i for i, (aid, _) in enumerate(data.annotators)}
    by_row = {
        (units[cid], raters[aid]): order
        for cid, aid, order in Judgment.objects.filter(project=project, assignment__isnull=False)
        .order_by()
        .values_list("comparison_id", "annotator_id", "assignment__chosen_by")
        if cid in units and aid in raters
    }
    counted, hit = M.loo_consensus_hits(choice_r)
    orders = [by_row.get(key) for key in zip(choice_r.unit.tolist(), choice_r.rater.tolist(), strict=True)]
    for order in sorted({o for o in orders if o is not None}):
        mine = counted & np.array([o == order for o in orders], dtype=bool)
        row = out.setdefault(order, {"assignments": 0, "submitted": 0})
        row["consensus_counted"] = int(mine.sum())
        row["agreement_with_consensus"] = _num(hit[mine].mean()) if mine.any() else None
    return out


def project_figures(
    project: Project, *, data: CrowdData | None = None, n_resamples: int = N_RESAMPLES, seed: int = SEED
) -> dict[str, Any]:
    """Every agreement figure of `project`: `crowd_figures` and the per-annotator figures. The object
    `manage.py agreement --json` prints, the dashboard caches and the API returns."""
    data = data if data is not None else load_crowd(project)
    figures = crowd_figures(data, project.harm_categories or [], n_resamples=n_resamples, seed=seed)
    choice_r = data.choice_ratings()
    figures["per_annotator"] = per_annotator(project, data, choice_r)
    figures["chosen_by"] = chosen_by_figures(project, data, choice_r)
    return figures


def comparison_figures(
    project: Project,
    comparisons,
    *,
    exclude: Sequence[str] = (),
    n_resamples: int = N_RESAMPLES,
    seed: int = SEED,
) -> dict[str, Any]:
    """`crowd_figures` on some of the project's comparisons (a snapshot's: ids or a values("…id") queryset),
    less the judgments `exclude` names: what a dataset card shows. On the same comparisons and judgments
    they are the dashboard's figures, digit for digit."""
    data = load_crowd(project, comparisons=comparisons, exclude=exclude)
    return crowd_figures(data, project.harm_categories or [], n_resamples=n_resamples, seed=seed)
