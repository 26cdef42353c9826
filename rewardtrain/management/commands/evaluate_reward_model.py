"""python manage.py evaluate_reward_model --model VERSION --file F --format trl|hh|safe-rlhf|raw|generic …"""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from rewardtrain.evaluation import FORMATS, EvaluationError, evaluate_file
from rewardtrain.models import ModelVersion


class Command(BaseCommand):
    help = "Score a preference file with a model version: accuracy and margin statistics."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--model", type=int, required=True, help="model version id")
        parser.add_argument("--file", required=True, help="JSONL file (optionally .gz)")
        parser.add_argument("--format", required=True, choices=FORMATS)
        parser.add_argument("--out", help="write one JSON line of scores per pair here")
        parser.add_argument("--batch-size", type=int, default=64)
        parser.add_argument("--json", action="store_true", help="print the report as one JSON object")

    def handle(self, *args, **opts) -> None:
        version = ModelVersion.objects.filter(pk=opts["model"]).first()
        if version is None:
            raise CommandError(f"no model version {opts['model']}")
        path = Path(opts["file"])
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        try:
            report = evaluate_file(
                version, path, opts["format"], out=opts["out"], batch_size=opts["batch_size"]
            )
        except EvaluationError as error:
            raise CommandError(str(error)) from error
        if opts["json"]:
            self.stdout.write(json.dumps(report))
            return
        margin = report["margin"]
        self.stdout.write(
            f"model {version.pk} ({version.kind}) on {report['file']}: {report['pairs']} pairs, "
            f"accuracy {report['accuracy']:.4f}, margin mean {margin['mean']:.4f} "
            f"median {margin['median']:.4f} (p10 {margin['p10']:.4f}, p90 {margin['p90']:.4f})"
        )
        if report.get("sign_accuracy") is not None:
            self.stdout.write(f"safe/unsafe sign accuracy {report['sign_accuracy']:.4f}")
        if report["skipped"]:
            self.stdout.write(f"left out: {report['skipped']}")
