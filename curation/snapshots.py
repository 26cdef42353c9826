"""Freezing a project's consensus pairs into a DatasetSnapshot that training and export consume."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable

import orjson
from django.db import connection, transaction

from curation.models import DatasetSnapshot, SnapshotPair
from insights.consensus import OK, check_options, consensus_outcomes, normalise_exclude
from projects.models import AuditEvent, Project

INSERT_BATCH = 5000
HASH_VERSION = 1
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
    """sha256 over the options and the pairs sorted by pair key (content, not database ids)."""
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
        )
    )
    for key, chosen, margin, votes, agreement, origin, a_safe, b_safe, safer in rows.iterator(
        chunk_size=5000
    ):
        h.update(b"\n")
        h.update(
            orjson.dumps(
                [key, chosen, round(margin, 12), votes, round(agreement, 12), origin, a_safe, b_safe, safer]
            )
        )
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
                _insert_pairs(buffer)
                buffer.clear()
        if buffer:
            _insert_pairs(buffer)
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
