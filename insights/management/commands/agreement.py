"""python manage.py agreement --project SLUG [--json]: the project's agreement figures (see agreement.md)."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError, CommandParser

from insights.agreement import project_figures
from projects.models import Project

COLUMNS = {
    "percent_agreement": "agreement",
    "alpha_nominal": "alpha nominal",
    "alpha_ordinal": "alpha ordinal",
    "alpha_interval": "alpha interval",
    "fleiss_kappa": "Fleiss kappa",
    "gwet_ac1": "Gwet AC1",
    "gwet_ac2": "Gwet AC2",
}

# A ranking project's figures (insights/rank_metrics.py).
RANKING_COLUMNS = {
    "kendall_w": "Kendall's W (mean over items)",
    "alpha_ordinal": "alpha ordinal on ranks",
    "pairwise_agreement": "pairwise agreement",
}


def _fmt(x: float | None, digits: int = 3) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def _fmt_ci(ci: list[float] | None) -> str:
    return "" if ci is None else f" [{ci[0]:.3f}, {ci[1]:.3f}]"


class Command(BaseCommand):
    help = "Print a project's agreement figures (crowd judgments, gold left out; source labels vs crowd)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True, help="Project slug.")
        parser.add_argument("--json", action="store_true", help="Print one JSON object.")
        parser.add_argument("--resamples", type=int, default=1000, help="Bootstrap resamples (default 1000).")

    def handle(self, *args, **options) -> None:
        project = Project.objects.filter(slug=options["project"], deleted_at__isnull=True).first()
        if project is None:
            raise CommandError(f"no project with slug {options['project']!r}")
        if options["resamples"] < 1:
            raise CommandError("--resamples must be at least 1")
        figures = project_figures(project, n_resamples=options["resamples"])
        if options["json"]:
            self.stdout.write(json.dumps(figures, indent=2))
            return
        w = self.stdout.write
        w(
            f"{project.name}: {figures['judgments']} crowd judgments on {figures['comparisons']} comparisons "
            f"by {figures['annotators']} annotators (95% bootstrap intervals, "
            f"{figures['resamples']} resamples of comparisons, seed {figures['seed']})"
        )
        w("")
        w(f"{'question':<40} {'ratings':>8} " + " ".join(f"{title:>24}" for title in COLUMNS.values()))
        for name, q in figures["questions"].items():
            cells = [f"{_fmt(q[m])}{_fmt_ci(q['ci'][m])}" for m in COLUMNS]
            w(f"{name:<40} {q['ratings']:>8} " + " ".join(f"{c:>24}" for c in cells))
        w(
            "Fleiss' kappa is generalised to any number of raters per comparison; alpha ordinal / interval "
            "and AC2 (quadratic weights) apply to the 7-point preference."
        )
        ranking = figures.get("ranking")
        if ranking is not None:
            w("")
            w(
                f"rankings: {ranking['rankings']} on {ranking['rated_units']} items "
                f"({ranking['pairable_units']} ranked twice or more; intervals resample items)"
            )
            for key, title in RANKING_COLUMNS.items():
                w(f"  {title:<38} {_fmt(ranking[key])}{_fmt_ci(ranking['ci'][key])}")
        s = figures["source_vs_crowd"]
        w("")
        w(
            f"source labels vs crowd consensus: {_fmt(s['agreement'])}{_fmt_ci(s['ci'])} on {s['n']} comparisons"
        )
        for row in s["by_source"]:
            w(f"  {row['annotator']}: {_fmt(row['agreement'])} on {row['n']}")
        w("")
        w(
            f"Cohen's kappa per annotator pair with at least 20 shared comparisons ({len(figures['pairs'])}): "
            "A / tie / B, and quadratic-weighted on the 7-point preference"
        )
        for p in figures["pairs"]:
            w(
                f"  {p['a']} × {p['b']}: {_fmt(p['cohen_kappa'])} on {p['n']}, "
                f"weighted {_fmt(p['weighted_kappa'])} on {p['weighted_n']}"
            )
        w("")
        w(
            f"{'annotator':<30} {'judgments':>9} {'vs consensus':>12} {'gold acc.':>9} {'left bias':>9} {'median s':>9}  flags"
        )
        for a in figures["per_annotator"]:
            flags = ", ".join(
                f
                for f, on in (
                    ("too fast", a["too_fast"]),
                    ("low gold accuracy", a["low_gold_accuracy"]),
                    ("flagged", a["flagged"]),
                    ("paused", bool(a["paused_reason"])),
                )
                if on
            )
            w(
                f"{a['annotator']:<30} {a['judgments']:>9} {_fmt(a['agreement_with_consensus']):>12} "
                f"{_fmt(a['gold_accuracy']):>9} {_fmt(a['left_bias']):>9} {_fmt(a['median_seconds'], 1):>9}  {flags}"
            )
