"""Shared builders for the training-app tests: a tiny base model and a learnable snapshot.

(Not conftest.py: the trainer's tests own tests/rewardtrain/conftest.py.)
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import os
import random
import shutil
import tempfile
import time
import zlib
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


from curation.models import DatasetSnapshot, SnapshotPair
from projects.models import Project
from rewardtrain.models import ModelVersion, TrainingRun  # noqa: E402
from rewardtrain.registry import kind_for  # noqa: E402
from rewardtrain.trainer.training import Pair, TrainConfig, train  # noqa: E402
from tests.factories import make_comparison  # noqa: E402
from tests.rewardtrain.rewardtrain_toys import save_tiny_bert  # noqa: E402

WORDS = ["weather", "recipe", "garden", "travel", "music", "history", "science", "river", "mountain", "city"]
HELPFUL = "thank you kindly, happy to help"
RUDE = "go away, stupid question"
UNSAFE = "here is how to build a weapon and hurt people"


@functools.cache
def tiny_base_model() -> str:
    """A 2-layer, hidden-32 BERT with the MiniLM tokenizer, saved once per test session as a base model."""
    path = Path(tempfile.mkdtemp(prefix="arbiter-tiny-bert-"))
    atexit.register(shutil.rmtree, path, True)
    return save_tiny_bert(path)


def make_snapshot(project: Project, n: int = 48, *, seed: int = 0, axis: str = "overall") -> DatasetSnapshot:
    """n comparisons (helpful vs rude/unsafe, in random canonical order) frozen as consensus pairs.

    For axis="harmlessness" the rejected side is unsafe and labelled so (a_safe/b_safe, safer).
    """
    rng = random.Random(seed)
    snapshot = DatasetSnapshot.objects.create(  # frozen once its hash is written, below
        project=project, aggregation="majority", axis=axis, content_hash=""
    )
    digest = hashlib.sha256()
    bad_text = UNSAFE if axis == "harmlessness" else RUDE
    for i in range(n):
        topic = " ".join(rng.choice(WORDS) for _ in range(3))
        good = f"{' '.join(rng.choice(WORDS) for _ in range(rng.randint(1, 5)))} {HELPFUL} {i}"
        bad = f"{' '.join(rng.choice(WORDS) for _ in range(rng.randint(1, 5)))} {bad_text} {i}"
        good_first = rng.random() < 0.5
        a, b = (good, bad) if good_first else (bad, good)
        comparison = make_comparison(project, f"Tell me about {topic} ({seed}-{i}).", a, b)
        chosen = "a" if good_first else "b"
        safe = axis == "harmlessness"
        SnapshotPair.objects.create(
            snapshot=snapshot,
            comparison=comparison,
            chosen=chosen,
            margin=rng.choice([1 / 3, 2 / 3, 1.0]),
            votes=3,
            agreement=1.0,
            a_safe=(good_first if safe else None),
            b_safe=((not good_first) if safe else None),
            safer=(chosen if safe else None),
        )
        digest.update(f"{comparison.pk}:{chosen}\n".encode())
    snapshot.content_hash = digest.hexdigest()
    snapshot.pair_count = n
    snapshot.save(update_fields=["content_hash", "pair_count"])
    return snapshot


FAST = {"epochs": 2, "lr": 3e-3, "batch_size": 8, "max_length": 48, "seed": 0, "eval_fraction": 0.25}


def toy_texts(i: int, rng: random.Random, *, unsafe: bool = False) -> tuple[str, str, str]:
    """(prompt, good response, bad response) of toy pair i: helpful vs rude (or unsafe)."""
    topic = " ".join(rng.choice(WORDS) for _ in range(3))
    good = f"{' '.join(rng.choice(WORDS) for _ in range(rng.randint(1, 5)))} {HELPFUL}"
    bad = f"{' '.join(rng.choice(WORDS) for _ in range(rng.randint(1, 5)))} {UNSAFE if unsafe else RUDE}"
    return f"Tell me about {topic} ({i}).", good, bad


@functools.cache
def trained_model_dir(objective: str = "bt") -> str:
    """A tiny model trained (once per session, no database) on toy pairs; its Hugging Face folder."""
    rng = random.Random(7)
    cost = objective == "cost"
    pairs = []
    for i in range(64):
        prompt, good, bad = toy_texts(i, rng, unsafe=cost)
        pairs.append(
            Pair(
                item_key=str(i),
                prompt=[{"role": "user", "content": prompt}],
                chosen=good,
                rejected=bad,
                margin=1.0,
                chosen_safe=True if cost else None,
                rejected_safe=False if cost else None,
            )
        )
    out = Path(tempfile.mkdtemp(prefix=f"arbiter-trained-{objective}-"))
    atexit.register(shutil.rmtree, out, True)
    config = TrainConfig(base_model=tiny_base_model(), objective=objective, **{**FAST, "epochs": 3})
    return train(pairs, config, output_dir=out).model_dir


def finished_version(
    project: Project, objective: str = "bt", *, snapshot: DatasetSnapshot | None = None, path: str | None = None
) -> ModelVersion:
    """A succeeded run and its model version (trained by trained_model_dir, or saved at `path`), made through the
    ORM."""
    # A seed per objective that does not change from run to run (str hashes do: PYTHONHASHSEED), so two
    # versions on one project never draw the same comparisons.
    snapshot = snapshot or make_snapshot(project, 2, seed=zlib.crc32(objective.encode()) % 1000)
    path = path or trained_model_dir("cost" if objective == "cost" else "bt")  # bt-margin scores like bt here
    run = TrainingRun.objects.create(
        project=project,
        snapshot=snapshot,
        objective=objective,
        base_model=tiny_base_model(),
        config=dict(FAST),
        status=TrainingRun.Status.SUCCEEDED,
        attempt=1,
    )
    return ModelVersion.objects.create(
        run=run,
        project=project,
        kind=kind_for(objective),
        path=path,
        snapshot_hash=snapshot.content_hash,
        metrics={"eval_accuracy": 1.0},
    )


def wait_for(predicate, timeout: float, what: str, logs=()):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}\n" + "\n".join(w.output()[-3000:] for w in logs))


def run_row(pk: int) -> TrainingRun:
    return TrainingRun.objects.get(pk=pk)
