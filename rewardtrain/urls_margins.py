from __future__ import annotations

from django.urls import path

from . import views_margins

urlpatterns = [
    path("p/<slug:slug>/margins/", views_margins.margins, name="margins"),
]
