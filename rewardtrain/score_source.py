"""The reward models' scores, registered with `annotate.model_scores` (see there) in RewardtrainConfig.ready()."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Expression, Subquery

from rewardtrain.models import Score


@dataclass(frozen=True)
class ScoreRow:
    value: float
    model_version_id: int
    is_active: bool
    kind: str


class RewardModelScores:
    def active_score(self, response_id: Expression) -> Expression:
        active = Score.objects.filter(
            response_id=response_id, model_version__is_active=True, model_version__kind="reward"
        )
        return Subquery(active.values("value")[:1])

    def scores_of(self, response_id: int) -> list[ScoreRow]:
        rows = (
            Score.objects.filter(response_id=response_id)
            .order_by("-model_version__created_at")
            .values_list("value", "model_version_id", "model_version__is_active", "model_version__kind")
        )
        return [ScoreRow(*row) for row in rows]
