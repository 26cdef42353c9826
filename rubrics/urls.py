from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("", views.rubric_list, name="rubric_list"),
    path("import/", views.rubric_import, name="rubric_import"),
    path("<int:pk>/", views.rubric_detail, name="rubric_detail"),
    path("<int:pk>/copy/", views.rubric_copy, name="rubric_copy"),
    path("<int:pk>/share/", views.rubric_share, name="rubric_share"),
    path("<int:pk>/diff/", views.version_diff, name="rubric_diff"),
    path("<int:pk>/v/<int:number>/", views.version_detail, name="rubric_version"),
    path("<int:pk>/v/<int:number>/criteria/", views.criterion_add, name="rubric_criterion_add"),
    path("<int:pk>/v/<int:number>/reorder/", views.criteria_reorder, name="rubric_reorder"),
    path("<int:pk>/v/<int:number>/publish/", views.version_publish, name="rubric_publish"),
    path("<int:pk>/v/<int:number>/new-draft/", views.version_new_draft, name="rubric_new_draft"),
    path("<int:pk>/v/<int:number>/discard/", views.version_discard, name="rubric_discard"),
    path("<int:pk>/v/<int:number>/export/", views.version_export, name="rubric_export"),
    path("<int:pk>/v/<int:number>/preview/<slug:slug>/", views.version_preview, name="rubric_preview"),
    path("criteria/<int:cid>/edit/", views.criterion_edit, name="rubric_criterion_edit"),
    path("criteria/<int:cid>/delete/", views.criterion_delete, name="rubric_criterion_delete"),
    path("criteria/<int:cid>/move/", views.criterion_move, name="rubric_criterion_move"),
    path("project/<slug:slug>/", views.project_rubric, name="project_rubric"),
]
