"""Reward terms beside the `trl` rows, through a registry.

`curation` sits below the training side and never imports it (import-linter). The app that fits rubric
rewards (`rewardtrain`) registers one source in its `AppConfig.ready()`; an export asked for with
`reward_fit` then writes each row's `reward_terms` (the fit's weights, and per response the criterion values,
the model score and the combined score). With none registered such an export is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class RewardTermsSource(Protocol):
    def check(self, snapshot, fit_id: int) -> None:
        """Raise ValueError (naming `reward_fit`) when the fit does not exist or is not of this snapshot."""

    def terms(self, snapshot, fit_id: int, pairs: Sequence[tuple[int, str]]) -> list[dict]:
        """One `reward_terms` object per (comparison id, chosen side), in the same order."""


registered: list[RewardTermsSource] = []


def register(source: RewardTermsSource) -> None:
    """Called once by the fitting app's `ready()`; a second registration replaces the first."""
    registered[:] = [source]


def source() -> RewardTermsSource:
    if not registered:
        raise ValueError("reward_fit: no app that fits rubric rewards is installed")
    return registered[0]
