"""Project pages for admins and researchers: create a project, change its settings (with a preview of what
annotators will be asked and of the guidelines' Markdown). Writes go through projects/services.py."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_http_methods
from markdown_it import MarkdownIt

from projects.access import get_project_for_user
from projects.services import may_create_projects, project_configure, project_create
from projects.settings_form import NewProjectForm, ProjectSettingsForm, questions_preview

_md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable("table")


def _preview(form) -> dict:
    """The questions and guidelines as the form's current values would show them, valid or not yet."""
    data = getattr(form, "cleaned_data", None) or {}
    if not form.is_bound:
        data = {name: form[name].value() for name in form.fields}
        data = {name: value() if callable(value) else value for name, value in data.items()}
    return {
        "questions": questions_preview(data),
        # markdown-it with raw HTML off escapes every `<` it does not produce itself (as annotate/rendering.py).
        "guidelines_html": mark_safe(_md.render(form["guidelines"].value() or "")),  # noqa: S308 - html off
    }


@login_required
@require_http_methods(["GET", "POST"])
def project_new(request: HttpRequest) -> HttpResponse:
    if not may_create_projects(request.user):
        raise Http404("No such page")
    form = NewProjectForm(request.POST or None)
    if request.method == "POST" and request.POST.get("action") != "preview" and form.is_valid():
        project = project_create(data=form.cleaned_data, actor=request.user)
        messages.success(request, f"Project {project.name} created. Invite people and import data next.")
        return redirect("project_detail", slug=project.slug)
    if request.method == "POST":
        form.is_valid()
    return render(request, "projects/project_settings.html", {"form": form, "new": True, **_preview(form)})


@login_required
@require_http_methods(["GET", "POST"])
def project_settings(request: HttpRequest, slug: str) -> HttpResponse:
    project, role = get_project_for_user(request.user, slug, ("admin", "researcher"))
    form = ProjectSettingsForm(request.POST or None, instance=project)
    if request.method == "POST" and request.POST.get("action") != "preview" and form.is_valid():
        changes = project_configure(project=project, data=form.cleaned_data, actor=request.user)
        if changes:
            messages.success(request, "Saved: " + ", ".join(sorted(changes)) + ".")
        else:
            messages.info(request, "Nothing changed.")
        return redirect("project_settings", slug=project.slug)
    if request.method == "POST":
        form.is_valid()
    return render(
        request,
        "projects/project_settings.html",
        {"form": form, "project": project, "role": role, "new": False, **_preview(form)},
    )
