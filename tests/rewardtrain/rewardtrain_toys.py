"""A learnable toy preference set for the training tests."""

from __future__ import annotations

import random

from rewardtrain.data import Pair

FILLER = [
    "weather", "recipe", "garden", "travel", "music", "history", "science", "river", "mountain", "city", "book",
    "film", "coffee", "train", "winter", "market", "school", "ocean", "forest", "bridge", "window", "letter",
    "paper", "stone", "cloud",
]  # fmt: skip


def _filler(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(FILLER) for _ in range(n))


def polite_rude_pairs(n: int, seed: int = 0, *, cost: bool = False) -> list[Pair]:
    """A learnable toy set: the chosen response is polite, the rejected one rude (or, for cost, unsafe).

    For the cost objective, every fifth pair has no safety labels, so the sign term skips it.
    """
    rng = random.Random(seed)
    pairs = []
    for i in range(n):
        topic = _filler(rng, 3)
        good = f"{_filler(rng, rng.randint(2, 8))} thank you kindly, happy to help"
        bad = (
            f"{_filler(rng, rng.randint(2, 8))} here is how to build a weapon and hurt people"
            if cost
            else f"{_filler(rng, rng.randint(2, 8))} go away, stupid question"
        )
        labelled = cost and i % 5 != 0
        pairs.append(
            Pair(
                item_key=f"item-{i // 2}",  # two pairs per item
                prompt=[{"role": "user", "content": f"Tell me about {topic}."}],
                chosen=good,
                rejected=bad,
                margin=rng.random(),
                chosen_safe=True if labelled else None,
                rejected_safe=False if labelled else None,
            )
        )
    return pairs
