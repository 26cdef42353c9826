from __future__ import annotations

from django.urls import path

from curation import views_export

urlpatterns = [
    path("p/<slug:slug>/snapshots/", views_export.snapshot_list, name="snapshot_list"),
    path("p/<slug:slug>/export/", views_export.export_page, name="export_page"),
    path("exports/download/<str:token>/", views_export.export_download, name="export_download"),
    path("tokens/", views_export.token_list, name="token_list"),
    path("tokens/<int:token_id>/revoke/", views_export.token_revoke, name="token_revoke"),
]
