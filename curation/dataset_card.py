"""The Markdown dataset card written beside every export: what is in the file and how it was made."""

from __future__ import annotations

from collections import Counter
from typing import Any

from django.db.models import Case, Count, IntegerField, Q, When

from curation.models import DatasetSnapshot, SnapshotPair
from insights.agreement import comparison_figures


def _md(value: Any) -> str:
    """A value for a Markdown table cell: no pipes or newlines from data."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def agreement_figures(snapshot: DatasetSnapshot) -> dict[str, Any]:
    """Crowd agreement on the snapshot's comparisons, less the judgments its filters exclude: the dashboard's
    computation (`insights.agreement.comparison_figures`), so source labels and comparisons with a gold answer
    are left out as everywhere, and on the same comparisons every figure is the dashboard's."""
    return comparison_figures(
        snapshot.project,
        SnapshotPair.objects.filter(snapshot=snapshot).values("comparison_id"),
        exclude=snapshot.filters.get("exclude", []),
    )


# The card's agreement columns: (figure, heading).
CARD_COLUMNS = (
    ("percent_agreement", "% agreement"),
    ("alpha_nominal", "Krippendorff α nominal"),
    ("alpha_ordinal", "α ordinal"),
    ("alpha_interval", "α interval"),
    ("fleiss_kappa", "Fleiss κ (generalised)"),
    ("gwet_ac1", "Gwet AC1"),
    ("gwet_ac2", "Gwet AC2 (quadratic)"),
)


SAFETY_COUNTS = {
    "n_a_safe": Q(a_safe=True),
    "n_a_unsafe": Q(a_safe=False),
    "n_b_safe": Q(b_safe=True),
    "n_b_unsafe": Q(b_safe=False),
    "n_safer_known": Q(safer__isnull=False),
}
AGREEMENT_COUNTS = {"unanimous": Q(agreement__gte=1.0), "at_least_75": Q(agreement__gte=0.75)}
MARGIN_BUCKETS = ("0", "(0, 1/3]", "(1/3, 2/3]", "(2/3, 1]")

# A ranking project's figures (insights/rank_metrics.py): (figure, title).
RANKING_FIGURES = (
    ("kendall_w", "Kendall's W (mean over items)"),
    ("alpha_ordinal", "Krippendorff α ordinal on ranks"),
    ("pairwise_agreement", "Pairwise agreement"),
)


def label_distribution(snapshot: DatasetSnapshot) -> dict[str, Any]:
    """The pairs counted by chosen side, label origin and margin bucket, and the agreement and safety
    counts: one pass over the snapshot's pairs (grouped by the three, a few dozen groups), summed here."""
    margin = Case(
        When(margin__lte=0, then=0),
        When(margin__lte=1 / 3 + 1e-9, then=1),
        When(margin__lte=2 / 3 + 1e-9, then=2),
        default=3,
        output_field=IntegerField(),
    )
    tallies = {key: Count("id", filter=q) for key, q in {**AGREEMENT_COUNTS, **SAFETY_COUNTS}.items()}
    groups = (
        SnapshotPair.objects.filter(snapshot=snapshot)
        .annotate(bucket=margin)
        .values("chosen", "label_origin", "bucket")
        .annotate(n=Count("id"), **tallies)
        .order_by()
    )
    chosen: Counter = Counter()
    origin: Counter = Counter()
    buckets = [0] * len(MARGIN_BUCKETS)
    sums: Counter = Counter()
    for g in groups:
        chosen[g["chosen"]] += g["n"]
        origin[g["label_origin"]] += g["n"]
        buckets[g["bucket"]] += g["n"]
        for key in tallies:
            sums[key] += g[key]
    return {
        "chosen": dict(chosen),
        "origin": dict(origin),
        "margin": dict(zip(MARGIN_BUCKETS, buckets, strict=True)),
        "agreement": {key: sums[key] for key in AGREEMENT_COUNTS},
        "safety": {key: sums[key] for key in SAFETY_COUNTS},
    }


def _fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.3f}"


def card_figures(snapshot: DatasetSnapshot) -> dict[str, Any]:
    """What the card reads from the database: the label distribution and the agreement figures."""
    return {"labels": label_distribution(snapshot), "agreement": agreement_figures(snapshot)}


def render_card(
    snapshot: DatasetSnapshot,
    *,
    options: dict[str, Any],
    rows: int,
    stats: dict[str, Any],
    file_name: str,
    figures: dict[str, Any] | None = None,
) -> str:
    """The card's Markdown; `figures` is what `card_figures(snapshot)` returns, read here when not given."""
    project = snapshot.project
    counts = snapshot.counts or {}
    if figures is None:
        figures = card_figures(snapshot)
    dist = figures["labels"]
    lines = [
        f"# Dataset card: {_md(project.name)} — snapshot {snapshot.pk}",
        "",
        f"File `{_md(file_name)}`: {rows} rows in the `{options['format']}` format"
        + (f" ({options['style']} style)" if options["format"] == "trl" else "")
        + (
            ", Parquet"
            if options.get("parquet")
            else ", JSON Lines" + (" (gzip)" if options.get("gzip") else "")
        )
        + ".",
        "",
        "## Provenance",
        "",
        "| | |",
        "|---|---|",
        f"| Project | {_md(project.slug)} |",
        f"| Snapshot | {snapshot.pk} {_md(snapshot.name)} |",
        f"| Content hash (sha256) | `{snapshot.content_hash}` |",
        f"| Created | {snapshot.created_at.isoformat()} |",
        f"| Aggregation | {snapshot.aggregation} |",
        f"| Axis | {snapshot.axis} |",
        f"| Excluded | {', '.join(snapshot.filters.get('exclude', [])) or 'nothing'} |",
        f"| Minimum agreement | {snapshot.filters.get('min_agreement') or 'none'} |",
        f"| Export options | {_md(', '.join(f'{k}={v}' for k, v in sorted(options.items())))} |",
        "",
        "## Counts",
        "",
        "| | |",
        "|---|---|",
    ]
    for key in (
        "comparisons",
        "pairs",
        "no_consensus",
        "tie_override",
        "below_min_agreement",
        "excluded_gold",
    ):
        lines.append(f"| {key.replace('_', ' ')} | {counts.get(key, 0)} |")
    for key, n in sorted((counts.get("excluded_judgments") or {}).items()):
        lines.append(f"| judgments left out ({_md(key)}) | {n} |")
    for key, n in sorted(stats.items()):
        lines.append(f"| export: {key.replace('_', ' ')} | {n} |")
    lines += ["", "## Label distribution", "", "| label | pairs |", "|---|---|"]
    for side in ("a", "b"):
        lines.append(f"| chosen = {side.upper()} (canonical order) | {dist['chosen'].get(side, 0)} |")
    for origin, n in sorted(dist["origin"].items()):
        lines.append(f"| label from {_md(origin)} | {n} |")
    for bucket, n in dist["margin"].items():
        lines.append(f"| human margin {bucket} | {n} |")
    lines.append(f"| unanimous (agreement 1) | {dist['agreement']['unanimous']} |")
    lines.append(f"| agreement ≥ 0.75 | {dist['agreement']['at_least_75']} |")
    for key, n in dist["safety"].items():
        lines.append(f"| {key[2:].replace('_', ' ')} | {n} |")
    lines += ["", "## Agreement (crowd votes on these comparisons)", ""]
    agreement = figures["agreement"]
    if not agreement["judgments"]:
        lines.append("No crowd votes on these comparisons: nothing to measure.")
    else:
        lines += [
            f"{agreement['judgments']} crowd judgments on {agreement['comparisons']} comparisons by "
            f"{agreement['annotators']} annotators; source labels and comparisons with a gold answer left out. "
            "Each figure with its 95 % interval.",
            "",
            "| question | ratings | units rated / pairable | "
            + " | ".join(title for _, title in CARD_COLUMNS)
            + " |",
            "|---|---|---|" + "---|" * len(CARD_COLUMNS),
        ]
        for q, f in agreement["questions"].items():
            cells = []
            for metric, _ in CARD_COLUMNS:
                lo_hi = f["ci"].get(metric)
                interval = f" ({_fmt(lo_hi[0])} to {_fmt(lo_hi[1])})" if lo_hi else ""
                cells.append(_fmt(f.get(metric)) + interval)
            lines.append(
                f"| {_md(q)} | {f['ratings']} | {f['rated_units']} / {f['pairable_units']} | "
                + " | ".join(cells)
                + " |"
            )
        source = agreement["source_vs_crowd"]
        if source["n"]:
            ci = source["ci"]
            interval = f" ({_fmt(ci[0])} to {_fmt(ci[1])})" if ci else ""
            lines += [
                "",
                f"Source labels equal to the crowd consensus: {_fmt(source['agreement'])}{interval} "
                f"on {source['n']} comparisons.",
            ]
        ranking = agreement.get("ranking")
        if ranking is not None:
            lines += ["", f"Rankings: {ranking['rankings']} on {ranking['rated_units']} items "
                      f"({ranking['pairable_units']} ranked twice or more); intervals resample items.", "",
                      "| figure | value (95 % interval) |", "|---|---|"]  # fmt: skip
            for key, title in RANKING_FIGURES:
                lo_hi = ranking["ci"].get(key)
                interval = f" ({_fmt(lo_hi[0])} to {_fmt(lo_hi[1])})" if lo_hi else ""
                lines.append(f"| {title} | {_fmt(ranking.get(key))}{interval} |")
        lines += [
            "",
            "α ordinal, α interval and AC2 apply to the 7-point preference. Intervals: percentile bootstrap over "
            f"comparisons, {agreement['resamples']:,} resamples, seed {agreement['seed']}.",
        ]
    if options["format"] == "raw":
        lines += [
            "",
            "## Annotators",
            "",
            "Annotators are named by their names (admin option, recorded in the audit log)."
            if options.get("with_names")
            else "Annotators are pseudonyms: HMAC-SHA256 of the annotator id under a random key made for this "
            "export and then discarded — stable within this file, unlinkable across exports. "
            "Source labels keep their source name.",
        ]
    lines += [
        "",
        "## Conventions",
        "",
        "Preferences are −3…+3 relative to the canonical order (negative = response A better). The human "
        "margin is the mean strength of the votes for the chosen side ÷ 3 (see insights/consensus.md).",
        "",
    ]
    return "\n".join(lines)
