from __future__ import annotations

from django.urls import path

from projects import accounts, views, views_people, views_settings
from projects.api import api

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("p/<slug:slug>/", views.project_detail, name="project_detail"),
    path("account/password/", accounts.PasswordChangeView.as_view(), name="password_change"),
    path("projects/new/", views_settings.project_new, name="project_new"),
    path("p/<slug:slug>/settings/", views_settings.project_settings, name="project_settings"),
    path("p/<slug:slug>/people/", views_people.people, name="project_people"),
    # The JSON API: one NinjaAPI, each app's router added in its AppConfig.ready().
    path("api/", api.urls),
]
