from django.apps import AppConfig


class RewardtrainConfig(AppConfig):
    name = "rewardtrain"
    verbose_name = "Reward-model training"

    def ready(self) -> None:
        from projects.api import api

        from . import api as rewardtrain_api

        api.add_router("", rewardtrain_api.router)
