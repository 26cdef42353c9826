"""Rubric scores and rubric-vs-preference figures. Plain functions over plain data: no Django here.

The formulas are written out in scoring.md beside this file.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

YES, NO, NA = "yes", "no", "na"
ANSWERS = (YES, NO, NA)


@dataclass(frozen=True)
class ScoringCriterion:
    key: str
    category: str  # essential | important | optional | pitfall
    weight: float  # positive, or negative for a pitfall


def weighted_score(
    criteria: Sequence[ScoringCriterion],
    answers: Mapping[str, str],
    *,
    normalise: str = "positive",
    essential_cap: float | None = 0.5,
) -> float | None:
    """The score (0–1) of one response, or None when no criterion with a weight was answered yes/no.

    normalise="positive": (Σ w·met over positive criteria − Σ |w| over met pitfalls) / Σ positive weights.
    normalise="absolute": the same numerator / Σ |w| over every counted criterion (pitfalls included).
    A criterion answered "na", or not answered at all, is left out of numerator and denominator.
    A met pitfall is one answered "yes" (the response shows the flaw). The result is clipped to [0, 1];
    a failed essential criterion (answered "no") then caps it at `essential_cap` (None: no cap).
    """
    if normalise not in ("positive", "absolute"):
        raise ValueError(f"normalise must be 'positive' or 'absolute', not {normalise!r}")
    numerator = 0.0
    positive = 0.0
    absolute = 0.0
    essential_failed = False
    for criterion in criteria:
        answer = answers.get(criterion.key)
        if answer not in (YES, NO):
            continue
        met = answer == YES
        if criterion.weight > 0:
            positive += criterion.weight
            if met:
                numerator += criterion.weight
        elif met:
            numerator -= abs(criterion.weight)
        absolute += abs(criterion.weight)
        if criterion.category == "essential" and not met:
            essential_failed = True
    denominator = positive if normalise == "positive" else absolute
    if denominator <= 0:
        return None
    score = min(1.0, max(0.0, numerator / denominator))
    if essential_failed and essential_cap is not None:
        score = min(score, essential_cap)
    return score


# --- Rubric vs preference ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class JudgedPair:
    """One judgment that has both rubric answers (per canonical side) and a human choice."""

    choice: str  # "a" | "b" | "tie" (relative to the canonical order)
    answers_a: Mapping[str, str]
    answers_b: Mapping[str, str]


@dataclass
class CriterionDiscrimination:
    key: str
    answered: int = 0  # judgments where both sides were answered yes/no
    discriminating: int = 0  # ... and the answers differ
    with_preference: int = 0  # discriminating, and the side it favours is the side the human chose
    against_preference: int = 0  # discriminating, and it favours the side the human rejected

    @property
    def rate(self) -> float | None:
        return self.discriminating / self.answered if self.answered else None

    @property
    def flag(self) -> str | None:
        """'never' or 'always' discriminates (when answered at least once), else None."""
        if not self.answered:
            return None
        if self.discriminating == 0:
            return "never"
        if self.discriminating == self.answered:
            return "always"
        return None


@dataclass
class RubricVsPreference:
    judgments: int = 0  # judgments with rubric answers on both sides and a choice
    decisive: int = 0  # ... whose human choice is A or B (not a tie)
    agree: int = 0  # decisive, and the rubric score is higher on the chosen side
    disagree: int = 0  # decisive, and the rubric score is higher on the rejected side
    rubric_tie: int = 0  # decisive, and both scores are equal (or a score is undefined)
    criteria: list[CriterionDiscrimination] = field(default_factory=list)

    @property
    def agreement(self) -> float | None:
        """Share of decisive judgments where the rubric agrees (a rubric tie counts as not agreeing)."""
        return self.agree / self.decisive if self.decisive else None


def rubric_vs_preference(
    criteria: Sequence[ScoringCriterion],
    pairs: Iterable[JudgedPair],
    *,
    normalise: str = "positive",
    essential_cap: float | None = 0.5,
) -> RubricVsPreference:
    """Does the rubric score difference agree with the human choice, and how often does each criterion
    discriminate between the two responses (met for one, not for the other)?

    A pitfall "favours" the side where it is absent; any other criterion favours the side where it is met.
    """
    result = RubricVsPreference(criteria=[CriterionDiscrimination(c.key) for c in criteria])
    for pair in pairs:
        if pair.choice not in ("a", "b", "tie"):
            continue
        result.judgments += 1
        if pair.choice != "tie":
            result.decisive += 1
            score_a = weighted_score(
                criteria, pair.answers_a, normalise=normalise, essential_cap=essential_cap
            )
            score_b = weighted_score(
                criteria, pair.answers_b, normalise=normalise, essential_cap=essential_cap
            )
            if score_a is None or score_b is None or score_a == score_b:
                result.rubric_tie += 1
            elif (score_a > score_b) == (pair.choice == "a"):
                result.agree += 1
            else:
                result.disagree += 1
        for criterion, figures in zip(criteria, result.criteria, strict=True):
            answer_a = pair.answers_a.get(criterion.key)
            answer_b = pair.answers_b.get(criterion.key)
            if answer_a not in (YES, NO) or answer_b not in (YES, NO):
                continue
            figures.answered += 1
            if answer_a == answer_b:
                continue
            figures.discriminating += 1
            met_side = "a" if answer_a == YES else "b"
            favoured = met_side if criterion.weight > 0 else ("b" if met_side == "a" else "a")
            if pair.choice == favoured:
                figures.with_preference += 1
            elif pair.choice != "tie":
                figures.against_preference += 1
    return result
