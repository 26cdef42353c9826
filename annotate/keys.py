"""The comparison's identity key, shared by the importers (curation/canonical.py) and the ranking service,
which creates the comparison of any pair an imported item lacks."""

from __future__ import annotations

import hashlib


def pair_key(prompt: str, key_a: str, key_b: str) -> str:
    """sha256 of the prompt key and the sorted pair of text keys: one comparison per unordered pair."""
    low, high = (key_a, key_b) if key_a <= key_b else (key_b, key_a)
    return hashlib.sha256(f"{prompt}:{low}:{high}".encode()).hexdigest()
