"""Freezing a project's consensus pairs into a DatasetSnapshot that training and export consume."""

from __future__ import annotations

import hashlib
import statistics
from collections import Counter
from collections.abc import Iterable

import orjson
from django.db import connection, transaction

from curation.models import DatasetSnapshot, SnapshotContested, SnapshotPair, SourceMargin
from insights.consensus import OK, check_options, consensus_outcomes, normalise_exclude
from projects.models import AuditEvent, Project

INSERT_BATCH = 5000
HASH_VERSION = 2  # 2: the contested comparisons count too
# A snapshot at least this big refreshes PostgreSQL's statistics of the pairs table when it is committed.
ANALYZE_PAIRS = 10_000


def snapshot_options(
    *, aggregation: str, axis: str, exclude: Iterable[str] | str | None, min_agreement: float | None
) -> dict:
    """The options that define a snapshot's content, in canonical form (part of the content hash)."""
    check_options(axis, aggregation, min_agreement)
    return {
        "aggregation": aggregation,
        "axis": axis,
        "exclude": sorted(normalise_exclude(exclude)),
        "min_agreement": min_agreement,
    }


def _hash_snapshot(snapshot: DatasetSnapshot, options: dict) -> str:
    """sha256 over the options, the pairs sorted by pair key, then the contested comparisons (pair key and
    status) sorted the same way (content, not database ids)."""
    h = hashlib.sha256()
    h.update(orjson.dumps({"v": HASH_VERSION, **options}, option=orjson.OPT_SORT_KEYS))
    rows = (
        SnapshotPair.objects.filter(snapshot=snapshot)
        .order_by("comparison__pair_key")
        .values_list(
            "comparison__pair_key",
            "chosen",
            "margin",
            "votes",
            "agreement",
            "label_origin",
            "a_safe",
            "b_safe",
            "safer",
            "source_margin",
        )
    )
    for key, chosen, margin, votes, agreement, origin, a_safe, b_safe, safer, source in rows.iterator(
        chunk_size=5000
    ):
        h.update(b"\n")
        line = [key, chosen, round(margin, 12), votes, round(agreement, 12), origin, a_safe, b_safe, safer]
        h.update(orjson.dumps(line if source is None else [*line, round(source, 12)]))
    contested = (
        SnapshotContested.objects.filter(snapshot=snapshot)
        .order_by("comparison__pair_key")
        .values_list("comparison__pair_key", "status")
    )
    for key, status in contested.iterator(chunk_size=5000):
        h.update(b"\n-")
        h.update(orjson.dumps([key, status]))
    return h.hexdigest()


PAIR_COLUMNS = (
    "snapshot_id",
    "comparison_id",
    "chosen",
    "margin",
    "votes",
    "agreement",
    "label_origin",
    "a_safe",
    "b_safe",
    "safer",
    "source_margin",
)


def _with_source_margins(rows: list[tuple]) -> list[tuple]:
    """Pair rows (PAIR_COLUMNS less the last) with their source margin: for a pair labelled by a source, the
    mean margin its source labels for the chosen side came with (a `trl` line's `margin`), else None."""
    wanted = {row[1]: row[2] for row in rows if row[6] == "source"}
    margins: dict[int, list[float]] = {}
    for cid, choice, margin in SourceMargin.objects.filter(judgment__comparison_id__in=wanted).values_list(
        "judgment__comparison_id", "judgment__choice", "margin"
    ):
        if choice == wanted[cid]:
            margins.setdefault(cid, []).append(margin)
    return [(*row, statistics.fmean(margins[row[1]]) if row[1] in margins else None) for row in rows]


def _insert_contested(snapshot: DatasetSnapshot, rows: list[tuple[int, str]]) -> None:
    """Record the comparisons without a pair that have any judgment (whatever the snapshot's options counted):
    `raw` exports their votes too. One statement, one probe of the judgments' (comparison, annotator) index
    a comparison."""
    with connection.cursor() as cur:
        cur.execute(
            f"INSERT INTO {SnapshotContested._meta.db_table} (snapshot_id, comparison_id, status)"
            " SELECT %s, t.cid, t.status FROM unnest(%s::bigint[], %s::text[]) AS t(cid, status)"
            " WHERE EXISTS (SELECT 1 FROM annotate_judgment j WHERE j.comparison_id = t.cid)",
            [snapshot.pk, [cid for cid, _ in rows], [status for _, status in rows]],
        )


def _insert_pairs(rows: list[tuple]) -> None:
    """COPY (several times faster than INSERTs for big snapshots)."""
    table = SnapshotPair._meta.db_table
    with (
        connection.cursor() as cur,
        cur.copy(f"COPY {table} ({', '.join(PAIR_COLUMNS)}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row(row)


def create_snapshot(
    *,
    project: Project,
    actor=None,
    aggregation: str = "majority",
    axis: str = "overall",
    exclude: Iterable[str] | str | None = (),
    min_agreement: float | None = None,
    name: str = "",
) -> DatasetSnapshot:
    """Freeze the consensus pairs of `project` (see consensus.md) with counts, filters and a content hash.

    Raises `ConsensusError` on a bad option (nothing is written).
    """
    options = snapshot_options(
        aggregation=aggregation, axis=axis, exclude=exclude, min_agreement=min_agreement
    )
    with transaction.atomic():
        snapshot = DatasetSnapshot.objects.create(
            project=project,
            name=name,
            aggregation=aggregation,
            axis=axis,
            filters={"exclude": options["exclude"], "min_agreement": min_agreement},
            content_hash="",
            created_by=actor if actor is not None and actor.is_authenticated else None,
        )
        statuses: Counter[str] = Counter()
        origins: Counter[str] = Counter()
        chosen_sides: Counter[str] = Counter()
        excluded: Counter[str] = Counter()
        buffer: list[tuple] = []
        contested: list[tuple] = []
        # Only a project with imported trl margins looks them up.
        source_margins = SourceMargin.objects.filter(judgment__project=project).exists()
        finish = _with_source_margins if source_margins else (lambda rows: [(*row, None) for row in rows])
        considered = 0
        for row in consensus_outcomes(
            project,
            axis=axis,
            aggregation=aggregation,
            exclude=options["exclude"],
            min_agreement=min_agreement,
        ):
            considered += 1
            statuses[row.status] += 1
            excluded.update(row.excluded_judgments)
            if row.status != OK:
                contested.append((row.comparison_id, row.status))
                if len(contested) >= INSERT_BATCH:
                    _insert_contested(snapshot, contested)
                    contested.clear()
                continue
            origins[row.label_origin] += 1
            chosen_sides[row.chosen] += 1
            buffer.append(
                (
                    snapshot.pk,
                    row.comparison_id,
                    row.chosen,
                    row.margin,
                    row.votes,
                    row.agreement,
                    row.label_origin,
                    row.a_safe,
                    row.b_safe,
                    row.safer,
                )
            )
            if len(buffer) >= INSERT_BATCH:
                _insert_pairs(finish(buffer))
                buffer.clear()
        if buffer:
            _insert_pairs(finish(buffer))
        if contested:
            _insert_contested(snapshot, contested)
        n_contested = SnapshotContested.objects.filter(snapshot=snapshot).count()
        pairs = statuses[OK]
        snapshot.pair_count = pairs
        snapshot.counts = {
            "comparisons": considered,
            "pairs": pairs,
            "no_consensus": statuses["no_consensus"],
            "tie_override": statuses["tie_override"],
            "below_min_agreement": statuses["below_min_agreement"],
            "excluded_gold": statuses["excluded_gold"],
            "by_origin": dict(sorted(origins.items())),
            "chosen": {"a": chosen_sides["a"], "b": chosen_sides["b"]},
            "excluded_judgments": dict(sorted(excluded.items())),
            "contested": n_contested,
        }
        snapshot.content_hash = _hash_snapshot(snapshot, options)
        snapshot.save(update_fields=["pair_count", "counts", "content_hash"])
        AuditEvent.objects.create(
            actor=snapshot.created_by,
            actor_name=snapshot.created_by.get_username() if snapshot.created_by else "",
            action="snapshot.create",
            project=project,
            target_type="snapshot",
            target_id=str(snapshot.pk),
            data={**options, "name": name, "pairs": pairs, "content_hash": snapshot.content_hash},
        )
        if pairs >= ANALYZE_PAIRS:
            transaction.on_commit(_analyze_pairs)
    return snapshot


def _analyze_pairs() -> None:
    """The export of a new snapshot usually follows at once, before autovacuum has analyzed its pairs: with
    statistics that still say "no rows for this snapshot" PostgreSQL plans nested loops and spills its sorts,
    and the export's queries took twice the CPU (measured at 83,333 pairs)."""
    with connection.cursor() as cur:
        cur.execute(f"ANALYZE {SnapshotPair._meta.db_table}")


def snapshot_as_dict(snapshot: DatasetSnapshot) -> dict:
    return {
        "id": snapshot.pk,
        "project": snapshot.project.slug,
        "name": snapshot.name,
        "aggregation": snapshot.aggregation,
        "axis": snapshot.axis,
        "filters": snapshot.filters,
        "counts": snapshot.counts,
        "pair_count": snapshot.pair_count,
        "content_hash": snapshot.content_hash,
        "created_by": snapshot.created_by.get_username() if snapshot.created_by else None,
        "created_at": snapshot.created_at.isoformat(),
    }
