"""Accounts: a person changes their own password; an admin resets someone's to a new one-time password; a
person who logs in with a one-time password (made by an invite or a reset) is asked to choose their own.

A one-time password is pending while the user's latest `user.created` / `user.password_reset` audit event is
newer than their latest `user.password_changed`; the check runs once, at login.
"""

from __future__ import annotations

import secrets

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.signals import user_logged_in
from django.db import transaction
from django.dispatch import receiver
from django.urls import reverse_lazy

from projects.models import AuditEvent, Project

SESSION_FLAG = "arbiter_one_time_password"
ONE_TIME = ("user.created", "user.password_reset")


def _audit(*, actor, action: str, user, project: Project | None = None) -> None:
    AuditEvent.objects.create(
        actor=actor,
        actor_name=actor.get_username() if actor else "",
        action=action,
        project=project,
        target_type="user",
        target_id=str(user.pk),
        data={"user": user.get_username()},
    )


def has_one_time_password(user) -> bool:
    latest = (
        AuditEvent.objects.filter(
            target_type="user", target_id=str(user.pk), action__in=[*ONE_TIME, "user.password_changed"]
        )
        .order_by("-created_at", "-pk")
        .values_list("action", flat=True)
        .first()
    )
    return latest in ONE_TIME


def reset_password(*, user, actor, project: Project | None = None) -> str:
    """A new one-time password for `user` (returned once, stored hashed); they choose their own at next login."""
    password = secrets.token_urlsafe(12)
    with transaction.atomic():
        user.set_password(password)
        user.save(update_fields=["password"])
        _audit(actor=actor, action="user.password_reset", user=user, project=project)
    return password


@receiver(user_logged_in, dispatch_uid="arbiter-one-time-password")
def _flag_one_time_password(sender, request, user, **kwargs) -> None:
    if request is not None and hasattr(request, "session") and has_one_time_password(user):
        request.session[SESSION_FLAG] = True


class PasswordChangeView(auth_views.PasswordChangeView):
    template_name = "registration/password_change_form.html"
    success_url = reverse_lazy("home")
    http_method_names = ["get", "head", "post"]  # a form page: no PUT, DELETE or OPTIONS

    def get_context_data(self, **kwargs):
        return super().get_context_data(**kwargs) | {
            "one_time": self.request.session.get(SESSION_FLAG, False)
        }

    def form_valid(self, form):
        response = super().form_valid(form)
        self.request.session.pop(SESSION_FLAG, None)
        _audit(actor=self.request.user, action="user.password_changed", user=self.request.user)
        messages.success(self.request, "Your password was changed.")
        return response
