"""The admins' people page of a project: invite, set roles, deactivate, mark model judges."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from projects.access import get_project_for_user
from projects.accounts import reset_password
from projects.models import Annotator, Membership
from projects.people import (
    PeopleError,
    membership_invite,
    membership_set_active,
    membership_set_model_judge,
    membership_set_role,
)

ACTIONS = ("invite", "role", "deactivate", "reactivate", "reset_password", "model_judge", "human")


class InviteForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Membership.Role.choices)
    create = forms.BooleanField(required=False, label="Create a new login with a one-time password")
    email = forms.EmailField(required=False)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Membership.Role.choices)


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def people(request: HttpRequest, slug: str) -> HttpResponse:
    project, _ = get_project_for_user(request.user, slug, roles=("admin",))
    form = InviteForm()
    new_password = None
    if request.method == "POST":
        action = request.POST.get("action", "")
        if action not in ACTIONS:
            return HttpResponseBadRequest(
                f"Unknown action {action[:40]!r}: expected one of {', '.join(ACTIONS)}."
            )
        if action != "invite" and not request.POST.get("membership", "").isdigit():
            return HttpResponseBadRequest("No membership named: the form's membership field must be its id.")
        try:
            if action == "invite":
                form = InviteForm(request.POST)
                if form.is_valid():
                    d = form.cleaned_data
                    membership, new_password = membership_invite(
                        project=project,
                        username=d["username"],
                        role=d["role"],
                        create=d["create"],
                        email=d["email"],
                        actor=request.user,
                    )
                    if new_password is None:
                        messages.success(request, f"{membership.user.username} is now a {membership.role}.")
                        return redirect("project_people", slug=project.slug)
                    form = InviteForm()
                    new_password = (membership.user.username, new_password)
            elif action == "reset_password":
                membership = get_object_or_404(Membership, pk=request.POST.get("membership"), project=project)
                if membership.user.is_superuser and not request.user.is_superuser:
                    raise PeopleError("only a superuser resets a superuser's password")
                password = reset_password(user=membership.user, actor=request.user, project=project)
                new_password = (membership.user.username, password)
            elif action in ("model_judge", "human"):
                membership = get_object_or_404(Membership, pk=request.POST.get("membership"), project=project)
                membership_set_model_judge(
                    membership=membership, model_judge=action == "model_judge", actor=request.user
                )
                messages.success(request, f"Saved {membership.user.username}.")
                return redirect("project_people", slug=project.slug)
            elif action in ("role", "deactivate", "reactivate"):
                membership = get_object_or_404(Membership, pk=request.POST.get("membership"), project=project)
                if action == "role":
                    role_form = RoleForm(request.POST)
                    if not role_form.is_valid():
                        raise PeopleError("choose annotator or researcher")
                    membership_set_role(
                        membership=membership, role=role_form.cleaned_data["role"], actor=request.user
                    )
                else:
                    membership_set_active(
                        membership=membership, active=action == "reactivate", actor=request.user
                    )
                messages.success(request, f"Saved {membership.user.username}.")
                return redirect("project_people", slug=project.slug)
        except PeopleError as e:
            if form.is_bound:
                form.add_error(None, str(e))
            else:  # a role change: the invite form was not sent
                messages.error(request, str(e))
    memberships = list(project.memberships.select_related("user").order_by("-is_active", "user__username"))
    judges = set(
        Annotator.objects.filter(project=project, kind=Annotator.Kind.MODEL).values_list("user_id", flat=True)
    )
    for m in memberships:
        m.model_judge = m.user_id in judges
    response = render(
        request,
        "projects/import_people.html",
        {
            "project": project,
            "form": form,
            "memberships": memberships,
            "roles": Membership.Role.choices,
            "new_password": new_password,
        },
    )
    if new_password:
        response["Cache-Control"] = "no-store"  # a one-time password must not be cached anywhere
    return response
