from __future__ import annotations

from django.urls import path

from . import views, views_eval_sets, views_rubric_rewards

app_name = "rewardtrain"
urlpatterns = [
    path("p/<slug:slug>/training/", views.run_list, name="run_list"),
    path("p/<slug:slug>/training/new/", views.run_new, name="run_new"),
    path("p/<slug:slug>/training/runs/<int:run_id>/", views.run_detail, name="run_detail"),
    path("p/<slug:slug>/training/runs/<int:run_id>/cancel/", views.run_cancel, name="run_cancel"),
    path("p/<slug:slug>/models/", views.model_list, name="model_list"),
    path("p/<slug:slug>/models/<int:version_id>/activate/", views.model_activate, name="model_activate"),
    path("models/download/<str:token>/", views.model_download, name="model_download"),
    path("p/<slug:slug>/models/<int:version_id>/evaluate/", views.evaluate_new, name="evaluate_new"),
    path("p/<slug:slug>/evaluations/<int:job_id>/", views.evaluation_detail, name="evaluation_detail"),
    path("p/<slug:slug>/eval-sets/", views_eval_sets.eval_set_list, name="eval_set_list"),
    path("p/<slug:slug>/eval-sets/compare/", views_eval_sets.eval_compare, name="eval_compare"),
    path(
        "p/<slug:slug>/eval-comparisons/<int:job_id>/", views_eval_sets.eval_comparison, name="eval_comparison"
    ),
    path("p/<slug:slug>/rubric-rewards/", views_rubric_rewards.rubric_rewards, name="rubric_rewards"),
    path(
        "p/<slug:slug>/rubric-rewards/<int:rubric_version_id>/",
        views_rubric_rewards.rubric_reward_version,
        name="rubric_reward_version",
    ),
    path(
        "p/<slug:slug>/rubric-rewards/fits/<int:fit_id>.json",
        views_rubric_rewards.rubric_reward_fit_json,
        name="rubric_reward_fit_json",
    ),
    path(
        "p/<slug:slug>/rubric-rewards/fits/<int:fit_id>/export/",
        views_rubric_rewards.rubric_reward_export,
        name="rubric_reward_export",
    ),
]
