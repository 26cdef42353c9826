from __future__ import annotations

from django.urls import path

from projects import views, views_people
from projects.api import api

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("p/<slug:slug>/", views.project_detail, name="project_detail"),
    path("p/<slug:slug>/people/", views_people.people, name="project_people"),
    # The JSON API: one NinjaAPI, each app's router added in its AppConfig.ready().
    path("api/", api.urls),
]
