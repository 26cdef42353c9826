"""python manage.py compare_models --set NAME --models 3 5 [--json]: score an evaluation set with model versions
(run here, not on a worker) and record it as a comparison the page shows."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from rewardtrain import comparison
from rewardtrain.eval_sets import SetError, job_json, start_comparison
from rewardtrain.models import EvaluationSet, ModelComparison, ModelVersion


class Command(BaseCommand):
    help = "Compare model versions on an evaluation set of their project: accuracy per subset, calibration, disagreements."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--set", required=True, help="evaluation set name (of the models' project)")
        parser.add_argument("--models", type=int, nargs="+", required=True, help="model version ids")
        parser.add_argument("--json", action="store_true", help="print the comparison as one JSON object")

    def handle(self, *args, **opts) -> None:
        first = ModelVersion.objects.select_related("project").filter(pk=opts["models"][0]).first()
        if first is None:
            raise CommandError(f"no model version {opts['models'][0]}")
        eval_set = EvaluationSet.objects.filter(project=first.project, name=opts["set"]).first()
        if eval_set is None:
            raise CommandError(f"project {first.project.slug} has no evaluation set named {opts['set']!r}")
        try:
            job = start_comparison(eval_set=eval_set, model_ids=opts["models"], send=False)
        except SetError as error:
            raise CommandError(str(error)) from error
        comparison.run_job(job.pk)
        job = ModelComparison.objects.select_related("eval_set", "project").get(pk=job.pk)
        if job.status != ModelComparison.Status.SUCCEEDED:
            raise CommandError(f"comparison {job.pk} failed: {job.error}")
        if opts["json"]:
            self.stdout.write(json.dumps(job_json(job)))
            return
        summary = job.summary
        self.stdout.write(f"comparison {job.pk} on {eval_set.name!r}: {summary['pairs']} pairs")
        for model in summary["models"]:
            lo, hi = model["ci95"]
            self.stdout.write(f"model {model['id']}: accuracy {model['accuracy']:.4f} [{lo:.4f}, {hi:.4f}]")
            for name, sub in model["subsets"].items():
                self.stdout.write(
                    f"  {name or '(no subset)'}: {sub['correct']}/{sub['n']} = {sub['accuracy']:.4f}"
                )
            ece = model["calibration"]["ece_correctness"]
            self.stdout.write(f"  ECE (correctness) {ece:.4f}")
        self.stdout.write(
            f"{len(summary['disagreements'])} pair(s) of disagreement; per pair: {job.results_path}"
        )
