"""Markdown from data, rendered safely: raw HTML in the source is shown as text, never passed through."""

from __future__ import annotations

from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

_md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


def render_markdown(text: str) -> SafeString:
    return mark_safe(_md.render(text or ""))  # noqa: S308 - html disabled: markdown-it escapes raw HTML
