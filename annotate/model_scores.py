"""Reward-model scores for the apps below the model side, through a registry.

`annotate` (the model queue orders) and `insights` (the comparison browser) sit below the model side and never
import it (import-linter); the registry lives in the lowest of them. An app that scores responses
(`rewardtrain`) registers one `ScoreSource` in its `AppConfig.ready()`; with none registered, the browser shows
no model scores, its "model disagrees" filter matches nothing, and a model queue order is the default order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from django.db.models import Expression, FloatField, Value


class ScoreRow(Protocol):
    """One model's score of one response, as the comparison page lists it."""

    value: float
    model_version_id: int
    is_active: bool
    kind: str


class ScoreSource(Protocol):
    def active_score(self, response_id: Expression) -> Expression:
        """An expression for the active reward model's score of the response `response_id` (an `OuterRef`)."""

    def scores_of(self, response_id: int) -> Sequence[ScoreRow]:
        """Every model's score of one response, newest model first."""


registered: list[ScoreSource] = []


def register(source: ScoreSource) -> None:
    """Called once by the scoring app's `ready()`; a second registration replaces the first."""
    registered[:] = [source]


def active_score(response_id: Expression) -> Expression:
    if not registered:
        return Value(None, output_field=FloatField())
    return registered[0].active_score(response_id)


def scores_of(response_id: int) -> Sequence[ScoreRow]:
    return registered[0].scores_of(response_id) if registered else []
