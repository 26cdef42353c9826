"""The model registry: a finished run becomes exactly one ModelVersion, saved with a model card.

The OneToOne from ModelVersion to TrainingRun makes "one version per run" a database fact; the version is
created with get_or_create in the same transaction that marks the run succeeded (conditional on our lease),
so a runner that lost its lease registers nothing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from .models import ModelVersion, TrainingRun

CARD_FILE = "README.md"


def kind_for(objective: str) -> str:
    return ModelVersion.Kind.COST if objective == TrainingRun.Objective.COST else ModelVersion.Kind.REWARD


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "—" if value is None else str(value)


def model_card(run: TrainingRun, metrics: dict) -> str:
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
    metrics = {
        **{k: v for k, v in (result.get("metrics") or {}).items() if not isinstance(v, list | dict)},
        "resumed_from_step": result.get("resumed_from_step"),
        "attempts": run.attempt,
    }
    _write_card(model_dir, model_card(run, metrics))
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
                "config": {**run.config, "objective": run.objective, "base_model": run.base_model},
            },
        )
    return version
