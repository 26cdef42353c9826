"""HH-RLHF transcripts as trainer pairs, for the bench scripts (no Django: the GPU bench runs without it).

`load_hh` reads the gzipped JSONL of HH records ({"chosen": transcript, "rejected": transcript}) into `Pair`s
whose prompt is the shared conversation and whose item_key is a hash of it; `pick` makes item-disjoint train
and held-out sets of exact sizes. Moved here from train_bench.py so gpu_trainer.py can share them.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from pathlib import Path

from rewardtrain.trainer.data import Pair

TURN = re.compile(r"\n\n(Human|Assistant):")
ROLES = {"Human": "user", "Assistant": "assistant"}


def parse_transcript(text: str) -> tuple[list[dict], str] | None:
    """HH transcript → (prompt messages, final assistant response); None if it does not end with the assistant."""
    parts = TURN.split(text)
    if parts[0].strip():
        return None
    turns = []
    for role, content in zip(parts[1::2], parts[2::2], strict=True):
        turns.append({"role": ROLES[role], "content": content[1:] if content.startswith(" ") else content})
    if not turns or turns[-1]["role"] != "assistant":
        return None
    return turns[:-1], turns[-1]["content"]


def load_hh(path: Path) -> tuple[list[Pair], int]:
    pairs, skipped = [], 0
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            chosen, rejected = parse_transcript(record["chosen"]), parse_transcript(record["rejected"])
            if chosen is None or rejected is None or chosen[0] != rejected[0]:
                skipped += 1  # the few records whose two sides do not share a prompt
                continue
            key = hashlib.sha256(json.dumps(chosen[0], sort_keys=True).encode()).hexdigest()[:16]
            pairs.append(Pair(item_key=key, prompt=chosen[0], chosen=chosen[1], rejected=rejected[1]))
    return pairs, skipped


def pick(pairs: list[Pair], n_train: int, n_eval: int, seed: int) -> tuple[list[Pair], list[Pair]]:
    """Item-disjoint train and held-out sets of exactly the sizes asked (items ordered by a seeded hash)."""
    by_item: dict[str, list[Pair]] = {}
    for pair in pairs:
        by_item.setdefault(pair.item_key, []).append(pair)
    items = sorted(by_item, key=lambda k: hashlib.sha256(f"{seed}:{k}".encode()).hexdigest())
    held_out, training = [], []
    for key in items:
        target = held_out if len(held_out) < n_eval else training
        target.extend(by_item[key])
        if len(training) >= n_train:
            break
    if len(training) < n_train or len(held_out) < n_eval:
        raise SystemExit(f"not enough pairs: {len(pairs)} usable")
    return training[:n_train], held_out[:n_eval]
