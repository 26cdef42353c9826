"""Identity and canonical text forms shared by importers, exporters and the workbench.

The keys (`prompt_key`, `text_key`, `pair_key`: 128 bits of sha256 as 32 hex characters) are defined in
`annotate.keys`, whose ranking service makes missing pair comparisons; the importers take them from here.
"""

from __future__ import annotations

import re

from annotate.keys import KEY_HEX as KEY_HEX
from annotate.keys import canonical_json as canonical_json
from annotate.keys import pair_key as pair_key
from annotate.keys import prompt_key as prompt_key
from annotate.keys import text_key as text_key

Messages = list[dict[str, str]]
ROLES = ("system", "user", "assistant")


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
