"""The identity keys of items, responses and comparisons, shared by the importers (curation/canonical.py re-exports
them) and the ranking service, which creates the comparison of any pair an imported item lacks.

A comparison is identified within a project by its prompt (canonical JSON of the messages) and the unordered pair
of its exact response texts (DESIGN.md "Formats"). Keys are the first 128 bits of a sha256 digest, as 32 hex
characters: a collision among a billion prompts has a chance of about 1e-21, and the keys' three unique indexes,
which are most of an import's work, are half as wide as full digests (measured in bench/RESULTS.md; migration 0012
shortened the keys stored before).
"""

from __future__ import annotations

import hashlib

import orjson

KEY_HEX = 32  # hex characters of a key: 128 bits


def _key(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:KEY_HEX]


def canonical_json(value: object) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def prompt_key(messages: list[dict[str, str]]) -> str:
    return _key(canonical_json(messages))


def text_key(text: str) -> str:
    return _key(text.encode("utf-8", "surrogatepass"))


def pair_key(prompt: str, key_a: str, key_b: str) -> str:
    """Of the prompt key and the two text keys in byte order (migration 0012 computes the same in SQL): one
    comparison per unordered pair."""
    low, high = (key_a, key_b) if key_a <= key_b else (key_b, key_a)
    return _key(f"{prompt}:{low}:{high}".encode())
