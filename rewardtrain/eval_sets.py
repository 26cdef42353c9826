"""Evaluation sets and model comparisons: the web side (no torch; the scoring is rewardtrain/comparison.py).

An evaluation set is a project's named, frozen preference file (any labelled import format, or RewardBench rows)
with an optional `subset`/`category` field per row. Adding one reads and checks the whole file first (a bad row
is an error naming the file, line and field, and nothing is stored), then copies it under
`ARBITER_DATA_DIR/evaluation-sets/` named by its sha256 and writes the `EvaluationSet` row (which never changes).

A comparison scores the set with several model versions in one Celery job (`rewardtrain.tasks.compare_models`,
cpu queue); `summarise` turns its per-pair margins into the figures the page, the API and the command show:
accuracy overall and per subset with 95% Wilson intervals, by the label's strength where the set carries it,
calibration (ECE through `rewardtrain.trainer.calibration`), margin histograms, and the pairs where the models
disagree with each other or with the label.
"""

from __future__ import annotations

import hashlib
import math
import shutil
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.db import IntegrityError, transaction

from annotate.models import Comparison
from config.celery import app as celery_app
from insights.rubric_criteria import wilson
from projects.models import AuditEvent, Project

from .eval_reading import SET_FORMATS, EvaluationError, iter_pairs
from .models import EvaluationSet, ModelComparison, ModelVersion
from .trainer.calibration import pair_calibration, sigmoid

COMPARE_TASK = "rewardtrain.tasks.compare_models"
MAX_MODELS = 8
DISAGREEMENT_LIMIT = 100
HIST_BINS = 16
NO_SUBSET = ""


class SetError(ValueError):
    """An evaluation set or a comparison cannot be made; the message says why (and where in the file)."""


def sets_dir() -> Path:
    return Path(settings.DATA_DIR) / "evaluation-sets"


def _suffix(name: str) -> str:
    for suffix in (".jsonl.gz", ".parquet", ".jsonl"):
        if name.endswith(suffix):
            return suffix
    return ".jsonl"


def _count(path: Path, fmt: str) -> tuple[Counter, dict, str]:
    """(pairs per subset, what was left out, the strength the rows carry) of a set file, read row by row."""
    skipped: dict = {}
    subsets: Counter = Counter()
    shares = margins = True
    for pair in iter_pairs(path, fmt, with_subsets=True, skipped=skipped):
        subsets[pair.extra.get("subset", NO_SUBSET)] += 1
        shares &= "share" in pair.extra
        margins &= "margin" in pair.extra
    if not subsets:
        raise EvaluationError(f"{path.name}: no labelled pairs to evaluate")
    strength = "vote share" if shares else "margin" if margins else ""
    return subsets, skipped, strength


def create_set(
    *, project: Project, name: str, fmt: str, source: Path, filename: str, actor=None
) -> EvaluationSet:
    """Check every row of `source`, copy it under the data folder and record the frozen set."""
    name = name.strip()
    if not name or len(name) > 100:
        raise SetError("a set's name must be 1 to 100 characters")
    if fmt not in SET_FORMATS:
        raise SetError(f"unknown format {fmt!r}; expected one of {', '.join(SET_FORMATS)}")
    if EvaluationSet.objects.filter(project=project, name=name).exists():
        raise SetError(f"the project already has an evaluation set named {name!r}")
    suffix = _suffix(filename)
    # The readers tell formats by the file's name: read it under its own suffix.
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(filename).name[-200:] or "set"
        named = Path(tmp) / (base if base.endswith(suffix) else base + suffix)
        shutil.copyfile(source, named)
        try:
            subsets, skipped, strength = _count(named, fmt)
        except EvaluationError as error:
            raise SetError(str(error)) from None
        digest = hashlib.sha256()
        with open(named, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        sha = digest.hexdigest()
        folder = sets_dir()
        folder.mkdir(parents=True, exist_ok=True)
        stored = folder / f"{sha}{suffix}"
        if not stored.exists():
            shutil.copyfile(named, stored)
    try:
        with transaction.atomic():
            eval_set = EvaluationSet.objects.create(
                project=project,
                name=name,
                format=fmt,
                filename=Path(filename).name[:300],
                path=str(stored),
                sha256=sha,
                rows=sum(subsets.values()),
                skipped=skipped,
                subsets=dict(sorted(subsets.items())),
                strength=strength,
            )
            if getattr(actor, "is_authenticated", False):
                AuditEvent.objects.create(
                    actor=actor,
                    actor_name=actor.get_username(),
                    action="evaluation_set.add",
                    project=project,
                    target_type="evaluation_set",
                    target_id=str(eval_set.pk),
                    data={"name": eval_set.name, "sha256": sha, "rows": eval_set.rows},
                )
            return eval_set
    except IntegrityError:
        raise SetError(f"the project already has an evaluation set named {name!r}") from None


def check_models(project: Project, model_ids: list[int]) -> list[ModelVersion]:
    """The project's model versions `model_ids` (in that order): 1 to MAX_MODELS of one kind, no repeats."""
    ids = list(dict.fromkeys(int(i) for i in model_ids))
    if not 1 <= len(ids) <= MAX_MODELS:
        raise SetError(f"choose 1 to {MAX_MODELS} model versions")
    found = {v.pk: v for v in ModelVersion.objects.filter(project=project, pk__in=ids)}
    missing = [i for i in ids if i not in found]
    if missing:
        raise SetError(f"no model version {missing[0]} in project {project.slug}")
    versions = [found[i] for i in ids]
    if len({v.kind for v in versions}) > 1:
        raise SetError("compare models of one kind (reward or cost) at a time")
    return versions


def start_comparison(
    *, eval_set: EvaluationSet, model_ids: list[int], actor=None, send: bool = True
) -> ModelComparison:
    """Record a comparison job and (with `send`) send it to the cpu queue once the transaction commits."""
    versions = check_models(eval_set.project, model_ids)
    with transaction.atomic():
        job = ModelComparison.objects.create(
            project=eval_set.project,
            eval_set=eval_set,
            model_ids=[v.pk for v in versions],
            created_by=actor if getattr(actor, "is_authenticated", False) else None,
        )
        job_id = job.pk
        if send:
            transaction.on_commit(lambda: celery_app.send_task(COMPARE_TASK, args=[job_id], queue="cpu"))
    return job


# --- figures ---------------------------------------------------------------------------------------------------


def _share(hits: int, n: int) -> dict[str, Any]:
    return {"n": n, "correct": hits, "accuracy": hits / n if n else None, "ci95": wilson(hits, n)}


def _strength_bucket(kind: str, value: float | None) -> str | None:
    if value is None or not math.isfinite(value):
        return None
    if kind == "vote share":
        for lo, hi in ((0.5, 2 / 3), (2 / 3, 5 / 6)):
            if value < hi:
                return f"{lo:.2f}–{hi:.2f}"
        return "0.83–1.00"
    return f"margin {round(value, 2):g}"  # a trl row's own margin: one bucket per value


def _confidence_bins(margins: list[float], n_bins: int = 10) -> list[dict]:
    """Reliability bins of confidence max(p, 1 − p) (p = σ(margin)) against being right."""
    bins = [[0, 0.0, 0.0] for _ in range(n_bins)]
    for m in margins:
        p = sigmoid(m)
        conf = max(p, 1 - p)
        b = min(int(conf * n_bins), n_bins - 1)
        bins[b][0] += 1
        bins[b][1] += conf
        bins[b][2] += 1.0 if m > 0 else 0.0
    return [
        {
            "lo": i / n_bins,
            "hi": (i + 1) / n_bins,
            "n": n,
            "mean_predicted": s_p / n if n else None,
            "mean_observed": s_o / n if n else None,
        }
        for i, (n, s_p, s_o) in enumerate(bins)
    ]


def summarise(rows: list[dict], model_ids: list[int], strength: str) -> dict[str, Any]:
    """The comparison's figures from its per-pair rows ({line, subset, strength, margins: {id: margin}})."""
    keys = [str(i) for i in model_ids]
    # One axis for every model, symmetric about 0 (an edge: HIST_BINS is even), so the histograms compare.
    reach = max((abs(r["margins"][k]) for r in rows for k in keys), default=0.0) or 1.0
    edges = np.linspace(-reach, reach, HIST_BINS + 1)
    subsets = sorted({r["subset"] for r in rows})
    models = []
    for k in keys:
        margins = [r["margins"][k] for r in rows]
        right = [m > 0 for m in margins]
        per_subset = {
            s: _share(
                sum(ok for ok, r in zip(right, rows, strict=True) if r["subset"] == s),
                sum(1 for r in rows if r["subset"] == s),
            )
            for s in subsets
        }
        by_strength: dict[str, list[int]] = {}
        for ok, r in zip(right, rows, strict=True):
            bucket = _strength_bucket(strength, r.get("strength"))
            if bucket is not None:
                by_strength.setdefault(bucket, [0, 0])
                by_strength[bucket][0] += ok
                by_strength[bucket][1] += 1
        shares = [r["strength"] for r in rows] if strength == "vote share" else None
        calibration = pair_calibration(margins, shares)
        counts, _ = np.histogram(margins, bins=edges)
        models.append(
            {
                "id": int(k),
                **_share(sum(right), len(right)),
                "mean_margin": float(np.mean(margins)) if margins else None,
                "subsets": per_subset,
                "by_strength": [{"bucket": b, **_share(*v)} for b, v in sorted(by_strength.items())],
                "calibration": calibration,
                "reliability": _confidence_bins(margins),
                "histogram": {"counts": counts.tolist(), "edges": edges.tolist()},
            }
        )
    agreement = []
    for i, a in enumerate(keys):
        for b in keys[i + 1 :]:
            same = sum((r["margins"][a] > 0) == (r["margins"][b] > 0) for r in rows)
            agreement.append({"a": int(a), "b": int(b), **_share(same, len(rows))})
    return {
        "pairs": len(rows),
        "models": models,
        "subsets": subsets,
        "strength": strength,
        "agreement": agreement,
        "disagreements": disagreements(rows, keys),
    }


def disagreements(rows: list[dict], keys: list[str], limit: int = DISAGREEMENT_LIMIT) -> list[dict]:
    """Pairs where the models disagree with each other (first) or all with the label; most confident first."""
    out = []
    for r in rows:
        sides = {k: r["margins"][k] > 0 for k in keys}
        split = len(set(sides.values())) > 1
        if not split and all(sides.values()):
            continue
        out.append(
            {
                "line": r["line"],
                "subset": r["subset"],
                "pair_key": r["pair_key"],
                "prompt": r["prompt"][:300],
                "chosen": r["chosen"][:300],
                "rejected": r["rejected"][:300],
                "reason": "models disagree" if split else "all models against the label",
                "margins": {k: r["margins"][k] for k in keys},
                "_rank": (not split, -max(abs(m) for m in r["margins"].values())),
            }
        )
    out.sort(key=lambda d: d["_rank"])
    for d in out:
        del d["_rank"]
    return out[:limit]


def linked_disagreements(job: ModelComparison) -> list[dict]:
    """The job's disagreement list with the project comparison of each pair where the project has one."""
    rows = list(job.summary.get("disagreements", []))
    ids = dict(
        Comparison.objects.filter(
            item__project=job.project, pair_key__in=[r["pair_key"] for r in rows]
        ).values_list("pair_key", "pk")
    )
    keys = [str(i) for i in job.model_ids]
    return [
        {**r, "comparison_id": ids.get(r["pair_key"]), "margin_list": [r["margins"].get(k) for k in keys]}
        for r in rows
    ]


def job_json(job: ModelComparison) -> dict[str, Any]:
    s = job.eval_set
    return {
        "id": job.pk,
        "project": job.project.slug,
        "status": job.status,
        "error": job.error,
        "eval_set": {
            "id": s.pk,
            "name": s.name,
            "format": s.format,
            "sha256": s.sha256,
            "rows": s.rows,
            "subsets": s.subsets,
            "strength": s.strength,
        },
        "models": job.model_ids,
        "summary": {**job.summary, "disagreements": linked_disagreements(job)} if job.summary else {},
        "results_path": job.results_path,
        "created_at": job.created_at.isoformat(),
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }
