from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.decorators.http import require_http_methods

# URLs are tried in order, one regular expression each: the workbench's patterns come first, because the
# annotators' requests are most of the traffic (no other pattern matches their paths, so the order changes only
# how many are tried). The JSON API, the labelling API with it, is mounted at /api/ by projects.urls.
urlpatterns = [
    path("", include("annotate.urls")),
    path("admin/", admin.site.urls),
    # Django's LoginView also takes PUT (as a POST); the form is posted, nothing else.
    path(
        "login/", require_http_methods(["GET", "HEAD", "POST"])(auth_views.LoginView.as_view()), name="login"
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("rubrics/", include("rubrics.urls")),
    path("", include("projects.urls")),
    path("", include("insights.urls")),
    path("", include("rewardtrain.urls_margins")),
    path("", include("curation.urls_export")),
    path("", include("curation.urls_import")),
    path("", include("rewardtrain.urls")),
]
