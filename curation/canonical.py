"""Identity and canonical text forms shared by importers, exporters and the workbench.

A comparison is identified within a project by its prompt (canonical JSON of the messages) and the
unordered pair of its exact response texts (DESIGN.md "Formats"). Keys are sha256 hex digests.
"""

from __future__ import annotations

import hashlib
import re

import orjson

# Defined in annotate, whose ranking service creates missing pair comparisons; the importers take it from here.
from annotate.keys import pair_key as pair_key

Messages = list[dict[str, str]]
ROLES = ("system", "user", "assistant")


def canonical_json(value: object) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def prompt_key(messages: Messages) -> str:
    return hashlib.sha256(canonical_json(messages)).hexdigest()


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def as_messages(prompt: str | Messages) -> Messages:
    """A plain-string prompt is one user turn."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [{"role": m["role"], "content": m["content"]} for m in prompt]


# --- Anthropic HH transcripts ----------------------------------------------------------------------------
# "\n\nHuman: …\n\nAssistant: …": the space after each marker is not part of the text.
_HH_TURN = re.compile(r"\n\n(Human|Assistant):[ ]?")
_HH_ROLE = {"Human": "user", "Assistant": "assistant"}
_ROLE_HH = {"user": "Human", "assistant": "Assistant", "system": "Human"}


class TranscriptError(ValueError):
    pass


def parse_hh(transcript: str) -> Messages:
    """Split an HH transcript into messages. The text must start with a turn marker."""
    parts = _HH_TURN.split(transcript)
    if parts[0] != "":
        raise TranscriptError("does not start with '\\n\\nHuman:'")
    if len(parts) < 3:
        raise TranscriptError("has no turns")
    return [{"role": _HH_ROLE[parts[i]], "content": parts[i + 1]} for i in range(1, len(parts), 2)]


def render_hh(messages: Messages, response: str) -> str:
    turns = [*messages, {"role": "assistant", "content": response}]
    return "".join(f"\n\n{_ROLE_HH.get(m['role'], 'Human')}: {m['content']}" for m in turns)
