"""Safe rendering of data for pages: Markdown with raw HTML disabled, and prompts as conversations.

Nothing from the data reaches a page unescaped: markdown-it escapes every `<` it does not produce itself
(`html` is off), links are limited to safe schemes by markdown-it's own validator, and roles are escaped by
the template that shows them.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

_md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable("table")

ROLE_LABELS = {"system": "System", "user": "User", "assistant": "Assistant"}


def render_markdown(text: str | None) -> SafeString:
    """Markdown to HTML with raw HTML shown as text (never interpreted) and code blocks kept verbatim."""
    return mark_safe(_md.render(text or ""))  # noqa: S308 - html disabled: markdown-it escapes all input


@dataclass(frozen=True)
class Turn:
    role: str
    label: str
    html: SafeString


def render_conversation(messages: list[dict] | str | None) -> list[Turn]:
    """A prompt's turns in order, each with its role and its content rendered as safe Markdown."""
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    turns = []
    for message in messages or []:
        role = str(message.get("role", "user"))
        turns.append(
            Turn(
                role=role,
                label=ROLE_LABELS.get(role, role.title()),
                html=render_markdown(message.get("content", "")),
            )
        )
    return turns
