"""Scores every response of a project with a model version: batched inference, bulk upsert of Score rows.

Imports torch (through rewardtrain.trainer.training): only the worker and management commands load this module.
"""

from __future__ import annotations

import logging

from annotate.models import Response
from rewardtrain.trainer.training import load_scorer

from .models import ModelVersion, Score

log = logging.getLogger(__name__)
CHUNK = 512


def score_project(*, version: ModelVersion, batch_size: int = 64, only_missing: bool = False) -> int:
    """Score (or re-score) every response of the version's project; returns how many were written.

    only_missing: score just the responses this version has no score for (new imports; the periodic task).
    """
    responses = (
        Response.objects.filter(item__project_id=version.project_id, item__deleted_at__isnull=True)
        .select_related("item")
        .order_by("pk")
    )
    if only_missing:
        responses = responses.exclude(scores__model_version=version)
        if not responses.exists():
            return 0
    scorer = load_scorer(version.path)
    written = 0
    last = 0
    while True:
        chunk = list(responses.filter(pk__gt=last)[:CHUNK])  # keyset pages: memory stays flat
        if not chunk:
            break
        values = scorer.score([(r.item.prompt, r.text) for r in chunk], batch_size=batch_size)
        Score.objects.bulk_create(
            [Score(model_version=version, response=r, value=v) for r, v in zip(chunk, values, strict=True)],
            update_conflicts=True,
            unique_fields=["model_version", "response"],
            update_fields=["value"],
        )
        written += len(chunk)
        last = chunk[-1].pk
    log.info("model %s: scored %d responses of project %s", version.pk, written, version.project_id)
    return written
