"""The fitted rubric reward as a function a policy trainer can call: the Python standard library only.

    from rewardtrain.rubric_reward_fn import RubricReward
    reward = RubricReward.from_json(open("fit-12.json").read())   # the page's "parameters (JSON)" link
    r = reward({"c1": "yes", "c2": "no", "c3": "na"}, model_score=0.37)

The reward of one response is

    R = Σ_i w_i · v_i  +  w_0 · model_score

v_i is 1 for "yes", 0 for "no"; for "na", a missing answer or None it is fill_i (the mean the fit used where
nobody answered yes / no); a number in [0, 1] is taken as v_i itself (the share of annotators who said yes);
a list of answers from several annotators gives the share of "yes" among its yes / no answers. w_0 is None for
a fit without a reward model (then model_score is ignored). Differences of R are log-odds: the fit's
probability that a response A is preferred to B is σ(R(A) − R(B)) (`preference_probability`).
DESIGN.md "Rubric rewards" has the fit this comes from.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

YES, NO = "yes", "no"


def criterion_value(answer: object, fill: float) -> float:
    """v_i of one criterion from an answer, a share of yes, or a list of answers (see the module doc)."""
    if answer is None or answer == "na":
        return fill
    if answer == YES:
        return 1.0
    if answer == NO:
        return 0.0
    if isinstance(answer, bool):
        return 1.0 if answer else 0.0
    if isinstance(answer, int | float):
        value = float(answer)
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"a criterion's share of yes must lie in [0, 1], not {value}")
        return value
    if isinstance(answer, Sequence) and not isinstance(answer, str):
        known = [a for a in answer if a in (YES, NO)]
        return sum(a == YES for a in known) / len(known) if known else fill
    raise ValueError(f"a criterion answer must be 'yes', 'no', 'na', a share or a list, not {answer!r}")


@dataclass(frozen=True)
class RubricReward:
    """A fitted rubric reward: criterion weights, fill values and the reward model's weight (or None)."""

    weights: Mapping[str, float]
    fill: Mapping[str, float] = field(default_factory=dict)
    model_weight: float | None = None

    @classmethod
    def from_dict(cls, data: Mapping) -> RubricReward:
        return cls(dict(data["weights"]), dict(data.get("fill") or {}), data.get("model_weight"))

    @classmethod
    def from_json(cls, text: str) -> RubricReward:
        return cls.from_dict(json.loads(text))

    def __call__(self, answers: Mapping[str, object], model_score: float | None = None) -> float:
        """R of one response from its criterion answers (keyed by criterion key) and the reward model's score.

        Raises ValueError when the fit has a model weight and no model score is given, or on a bad answer.
        Answers to keys the fit does not know are ignored."""
        total = 0.0
        for key, weight in self.weights.items():
            total += weight * criterion_value(answers.get(key), self.fill.get(key, 0.5))
        if self.model_weight is not None:
            if model_score is None or not math.isfinite(model_score):
                raise ValueError("this rubric reward was fitted with a reward model: give its model_score")
            total += self.model_weight * model_score
        return total

    def terms(self, answers: Mapping[str, object], model_score: float | None = None) -> dict[str, float]:
        """Each term w_i · v_i (and "model": w_0 · model_score) of R, for inspection."""
        out = {
            key: weight * criterion_value(answers.get(key), self.fill.get(key, 0.5))
            for key, weight in self.weights.items()
        }
        if self.model_weight is not None and model_score is not None:
            out["model"] = self.model_weight * model_score
        return out


def preference_probability(reward_a: float, reward_b: float) -> float:
    """The fit's probability that the response with reward_a is preferred: σ(reward_a − reward_b)."""
    z = reward_a - reward_b
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)
