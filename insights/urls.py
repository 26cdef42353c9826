from __future__ import annotations

from django.urls import path

from insights import views

urlpatterns = [
    path("p/<slug:slug>/dashboard/", views.dashboard, name="dashboard"),
    path("p/<slug:slug>/dashboard/recompute/", views.dashboard_recompute, name="dashboard_recompute"),
    path("p/<slug:slug>/annotators/<int:annotator_id>/", views.annotator_detail, name="annotator_detail"),
    path("p/<slug:slug>/annotators/<int:annotator_id>/flag/", views.annotator_flag, name="annotator_flag"),
    path(
        "p/<slug:slug>/annotators/<int:annotator_id>/unpause/",
        views.annotator_unpause_view,
        name="annotator_unpause",
    ),
    path("p/<slug:slug>/comparisons/", views.comparison_list, name="comparison_list"),
    path("p/<slug:slug>/comparisons/more/", views.comparisons_more, name="comparisons_more"),
    path("p/<slug:slug>/comparisons/<int:comparison_id>/", views.comparison_detail, name="comparison_detail"),
    path(
        "p/<slug:slug>/comparisons/<int:comparison_id>/adjudicate/",
        views.comparison_adjudicate,
        name="comparison_adjudicate",
    ),
    path("p/<slug:slug>/adjudicate/", views.adjudicate, name="adjudicate"),
]
