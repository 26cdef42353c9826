from __future__ import annotations

from django.urls import path

from . import views_import, views_people

urlpatterns = [
    path("imports/", views_import.import_new, name="import_new"),
    path("imports/<int:job_id>/", views_import.import_job, name="import_job"),
    path("p/<slug:slug>/people/", views_people.people, name="project_people"),
]
