from django.apps import AppConfig


class RewardtrainConfig(AppConfig):
    name = "rewardtrain"
    verbose_name = "Reward-model training"

    def ready(self) -> None:
        from annotate import model_scores
        from curation import reward_terms
        from projects.api import api

        from . import api as rewardtrain_api
        from .rubric_reward import FitRewardTerms
        from .score_source import RewardModelScores

        api.add_router("", rewardtrain_api.router)
        model_scores.register(RewardModelScores())
        reward_terms.register(FitRewardTerms())
