from __future__ import annotations

from django.urls import path

from curation import views_import

urlpatterns = [
    path("imports/", views_import.import_new, name="import_new"),
    path("imports/<int:job_id>/", views_import.import_job, name="import_job"),
]
