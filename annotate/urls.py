from __future__ import annotations

from django.urls import path

from annotate import views

urlpatterns = [
    path("p/<slug:slug>/label/", views.workbench, name="workbench"),
    path("p/<slug:slug>/label/status/", views.workbench_status, name="workbench_status"),
    path("p/<slug:slug>/label/guidelines/", views.workbench_guidelines, name="workbench_guidelines"),
    path("p/<slug:slug>/label/history/", views.workbench_history, name="workbench_history"),
    path("p/<slug:slug>/label/<int:assignment_id>/submit/", views.workbench_submit, name="workbench_submit"),
    path("p/<slug:slug>/label/<int:assignment_id>/draft/", views.workbench_draft, name="workbench_draft"),
    path("p/<slug:slug>/label/<int:assignment_id>/skip/", views.workbench_skip, name="workbench_skip"),
    path(
        "p/<slug:slug>/label/judgments/<int:judgment_id>/revise/",
        views.workbench_revise,
        name="workbench_revise",
    ),
    path(
        "p/<slug:slug>/label/rankings/<int:ranking_id>/revise/",
        views.workbench_revise_ranking,
        name="workbench_revise_ranking",
    ),
    path("p/<slug:slug>/label/controls/", views.project_controls, name="workbench_controls"),
]
