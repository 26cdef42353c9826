from __future__ import annotations

from django import template

from annotate.rendering import render_markdown

register = template.Library()


@register.filter
def rubric_markdown(text: str):
    return render_markdown(text)


@register.filter
def percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.0f}%"


@register.filter
def score(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


@register.filter
def get_item(mapping, key):
    return mapping.get(key) if mapping else None


@register.filter
def offers(criteria, choice: str) -> bool:
    """Whether any checklist line offers `choice` (so a hint names only keys that do something)."""
    return any(choice in c.choices for c in criteria or [])
