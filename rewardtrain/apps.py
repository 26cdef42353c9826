from django.apps import AppConfig


class RewardtrainConfig(AppConfig):
    name = "rewardtrain"
    verbose_name = "Reward-model training"

    def ready(self) -> None:
        from insights import model_scores
        from projects.api import api

        from . import api as rewardtrain_api
        from .score_source import RewardModelScores

        api.add_router("", rewardtrain_api.router)
        model_scores.register(RewardModelScores())
