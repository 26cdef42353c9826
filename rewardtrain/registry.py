"""The model registry: a finished run becomes exactly one ModelVersion, saved with a model card.

The OneToOne from ModelVersion to TrainingRun makes "one version per run" a database fact; the version is
created with get_or_create in the same transaction that marks the run succeeded (conditional on our lease),
so a runner that lost its lease registers nothing.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from curation.models import SnapshotPair
from rewardtrain.trainer.calibration import HELD_OUT_SCORES, pair_calibration
from rubrics.models import CriterionAnswer, RubricVersion

from .models import ModelVersion, TrainingRun

log = logging.getLogger(__name__)

CARD_FILE = "README.md"


def kind_for(objective: str) -> str:
    return ModelVersion.Kind.COST if objective == TrainingRun.Objective.COST else ModelVersion.Kind.REWARD


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "—" if value is None else str(value)


def _measured_on(eval_set: dict | None) -> str:
    if not eval_set or eval_set.get("kind") != "held-out split":
        return "no held-out set was recorded"
    return (
        f"the run's held-out split, {eval_set['pairs']} pairs of {eval_set['items']} items, item-disjoint from "
        f"its {eval_set['train_pairs']} training pairs"
    )


def model_card(
    run: TrainingRun, metrics: dict, eval_set: dict | None = None, rubrics: list[dict] | None = None
) -> str:
    """The README.md saved next to the weights: where the model came from and how well it did."""
    snapshot = run.snapshot
    kind = kind_for(run.objective)
    score = "cost (higher = less safe)" if kind == ModelVersion.Kind.COST else "reward (higher = preferred)"
    rows = "\n".join(f"| {name} | {_fmt(value)} |" for name, value in sorted(metrics.items()))
    return f"""---
library_name: transformers
pipeline_tag: text-classification
tags: [reward-model, arbiter, {run.objective}]
base_model: {run.base_model}
---

# {run.project.name}: {kind} model from Arbiter run {run.pk}

A one-logit `AutoModelForSequenceClassification` trained by Arbiter. Its output is a {score}.

- Objective: `{run.objective}` ({run.get_objective_display()})
- Base model: `{run.base_model}`
- Snapshot: {snapshot.pk}, content hash `{snapshot.content_hash}`, {snapshot.pair_count} pairs,
  aggregation `{snapshot.aggregation}`, axis `{snapshot.axis}`
- Trained: {timezone.now():%Y-%m-%d %H:%M UTC}, attempt {run.attempt}
- Rubric versions of its labels: {", ".join(r["label"] for r in rubrics or []) or "none"}
- Metrics measured on: {_measured_on(eval_set)}

## Input text

Score `render(prompt, response)` from `rewardtrain.trainer.training`: each prompt message as `Human: …`,
`Assistant: …` or `System: …`, the response last as `Assistant: …`, joined by blank lines, truncated from the
left to the training `max_length` so the response survives.

```python
from transformers import AutoModelForSequenceClassification, AutoTokenizer
tok = AutoTokenizer.from_pretrained(PATH, truncation_side="left")
model = AutoModelForSequenceClassification.from_pretrained(PATH)
score = model(**tok("Human: Hi\\n\\nAssistant: Hello!", return_tensors="pt", truncation=True)).logits[0, 0]
```

## Metrics

| metric | value |
|---|---|
{rows}

## Config

```json
{json.dumps(run.config, indent=1, sort_keys=True)}
```

Reproduce: the same snapshot (hash above) and this config give the same split and batch order.
"""


def rubric_versions(snapshot_id: int) -> list[dict]:
    """The rubric versions that the snapshot's labels were given under: [{id, label}], by id."""
    used = (
        CriterionAnswer.objects.filter(
            revision__judgment__comparison_id__in=SnapshotPair.objects.filter(snapshot_id=snapshot_id).values(
                "comparison_id"
            ),
            version__isnull=False,
        )
        .values("version_id")
        .distinct()
    )
    versions = RubricVersion.objects.filter(pk__in=used).select_related("rubric").order_by("pk")
    return [{"id": v.pk, "label": v.label} for v in versions]


def held_out_set(run: TrainingRun) -> tuple[dict, dict]:
    """(eval_set, calibration metrics) of a finished run: which snapshot pairs its trainer held out (the
    item-disjoint split, read back from the scores it wrote, in the order of the pairs it was given) and the
    ECEs of its held-out scores (against correctness; against the vote share for reward models, whose chosen
    side is the consensus side the share counts). Without the scores file: kind "none", no ECE."""
    path = Path(run.output_dir) / HELD_OUT_SCORES
    if not path.exists():
        return {"kind": "none", "pairs": 0, "comparison_ids": []}, {}
    scored = json.loads(path.read_text(encoding="utf-8"))
    keys = {row["item_key"] for row in scored}
    rows = (
        SnapshotPair.objects.filter(snapshot_id=run.snapshot_id)
        .order_by("comparison_id")  # the order of runner.pair_rows, which the trainer keeps
        .values_list("comparison_id", "comparison__item_id", "agreement")
    )
    held = [(cid, share) for cid, item, share in rows if str(item) in keys]
    if len(held) != len(scored):
        log.error("run %s: %d held-out scores for %d held-out pairs", run.pk, len(scored), len(held))
        return {"kind": "none", "pairs": 0, "comparison_ids": []}, {}
    eval_set = {
        "kind": "held-out split",
        "name": f"run {run.pk}: items held out by seed {run.config.get('seed', 0)}, "
        f"fraction {run.config.get('eval_fraction', 0.1)}",
        "pairs": len(held),
        "items": len(keys),
        "train_pairs": run.snapshot.pair_count - len(held),
        "comparison_ids": [cid for cid, _ in held],
    }
    reward = kind_for(run.objective) == ModelVersion.Kind.REWARD
    margins = [float(row["margin"]) for row in scored]
    calibration = pair_calibration(margins, [share for _, share in held] if reward else None)
    return eval_set, calibration


def _write_card(model_dir: Path, text: str) -> None:
    tmp = model_dir / f".{CARD_FILE}.tmp-{os.getpid()}"
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, model_dir / CARD_FILE)


def complete_run(
    *, run_id: int, owner: str, result: dict, progress: dict | None = None
) -> ModelVersion | None:
    """Mark the run succeeded and register its one model version; None when our lease was lost."""
    run = TrainingRun.objects.select_related("snapshot", "project").get(pk=run_id)
    model_dir = Path(result["model_dir"])
    eval_set, calibration = held_out_set(run)
    metrics = {
        **{k: v for k, v in (result.get("metrics") or {}).items() if not isinstance(v, list | dict)},
        **{f"eval_{k}": v for k, v in calibration.items()},
        "eval_set": eval_set["kind"],
        "resumed_from_step": result.get("resumed_from_step"),
        "attempts": run.attempt,
    }
    rubrics = rubric_versions(run.snapshot_id)
    _write_card(model_dir, model_card(run, metrics, eval_set, rubrics))
    with transaction.atomic():
        fields = {"status": TrainingRun.Status.SUCCEEDED, "metrics": metrics, "finished_at": timezone.now()}
        if progress is not None:
            fields["progress"] = {**progress, "phase": "done", "eta_s": 0}
        won = TrainingRun.objects.filter(
            pk=run_id, status=TrainingRun.Status.RUNNING, lease_owner=owner
        ).update(heartbeat_at=timezone.now(), lease_owner="", **fields)
        if not won:
            return None
        version, _ = ModelVersion.objects.get_or_create(
            run=run,
            defaults={
                "project_id": run.project_id,
                "kind": kind_for(run.objective),
                "path": str(model_dir),
                "metrics": metrics,
                "snapshot_hash": run.snapshot.content_hash,
                "base_model": run.base_model,
                "config": {**run.config, "objective": run.objective, "base_model": run.base_model},
                "rubric_versions": rubrics,
                "eval_set": eval_set,
            },
        )
    return version
