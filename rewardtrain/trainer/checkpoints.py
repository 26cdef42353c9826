"""Atomic training checkpoints: write to a temporary folder, fsync, rename into place.

A folder named `step-NNNNNNNN` exists only once everything in it is on disk, so the newest such folder is
always a complete checkpoint, whatever moment the process was killed at.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

STEP_DIR = re.compile(r"^step-(\d{8})$")
STATE_FILE = "state.json"


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    step: int
    state: dict


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def rng_state() -> dict:
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(
    root: Path, step: int, *, model_state: dict, optimizer_state: dict, scheduler, state: dict, keep: int
) -> Path:
    """Write checkpoint `step` under `root` atomically and keep only the newest `keep` checkpoints.

    `model_state` and `optimizer_state` are full state dicts (wrapping.training_state gathers them under FSDP).
    """
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:08d}"
    tmp = root / f".tmp-step-{step:08d}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    torch.save(model_state, tmp / "model.pt")
    torch.save(optimizer_state, tmp / "optimizer.pt")
    torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
    torch.save(rng_state(), tmp / "rng.pt")
    # state.json last: a folder without it is never trusted, even if a rename were not atomic.
    (tmp / STATE_FILE).write_text(json.dumps({**state, "step": step}, indent=1))
    for child in tmp.iterdir():
        _fsync_file(child)
    fsync_dir(tmp)
    if final.exists():
        stale = root / f".old-step-{step:08d}-{os.getpid()}"
        os.replace(final, stale)
        os.replace(tmp, final)
        shutil.rmtree(stale)
    else:
        os.replace(tmp, final)
    fsync_dir(root)
    prune(root, keep)
    return final


def list_complete(root: Path) -> list[Checkpoint]:
    """Complete checkpoints under `root`, oldest first."""
    found = []
    if not root.is_dir():
        return found
    for child in root.iterdir():
        match = STEP_DIR.match(child.name)
        if not match or not child.is_dir():
            continue
        try:
            state = json.loads((child / STATE_FILE).read_text())
        except (OSError, ValueError):
            continue
        found.append(Checkpoint(path=child, step=int(match.group(1)), state=state))
    return sorted(found, key=lambda c: c.step)


def latest(root: Path) -> Checkpoint | None:
    complete = list_complete(root)
    return complete[-1] if complete else None


def prune(root: Path, keep: int) -> None:
    """Drop all but the newest `keep` complete checkpoints, and leftovers of interrupted writes."""
    for checkpoint in list_complete(root)[: -max(keep, 1)]:
        shutil.rmtree(checkpoint.path, ignore_errors=True)
    for child in root.iterdir():
        if child.name.startswith((".tmp-step-", ".old-step-")) and not child.name.endswith(f"-{os.getpid()}"):
            shutil.rmtree(child, ignore_errors=True)


def load(checkpoint: Checkpoint, *, scheduler) -> tuple[dict, dict]:
    """The checkpoint's (model, optimizer) state dicts; the scheduler and the RNGs are restored in place."""
    model_state = torch.load(checkpoint.path / "model.pt", map_location="cpu", weights_only=True)
    optimizer_state = torch.load(checkpoint.path / "optimizer.pt", map_location="cpu", weights_only=True)
    scheduler.load_state_dict(torch.load(checkpoint.path / "scheduler.pt", weights_only=True))
    restore_rng_state(torch.load(checkpoint.path / "rng.pt", weights_only=True))
    return model_state, optimizer_state
