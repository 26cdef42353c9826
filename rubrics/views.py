"""Rubric authoring for researchers and admins. Anyone who is a researcher on some project, or an admin, may
read and copy every rubric; only a rubric's owners change it — its author, the researchers of the projects it is
shared with, and admins (403 for other authors); everyone else gets 404 (anonymous: the login page).
Project-specific things (pinning a version, preview on a project's comparisons, scores from a project's
labels) also need the researcher role on that project."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from annotate.models import Comparison
from projects.access import get_project_for_user

from . import services
from .forms import CriterionForm, ImportForm, PinForm, RubricForm
from .interchange import RubricFileError, dump_rubric, import_rubric
from .models import Criterion, Rubric, RubricVersion
from .selectors import can_author, can_edit, research_projects, rubric_results


def _require_author(request: HttpRequest) -> None:
    if not can_author(request.user):
        raise Http404("No such page")


def _get_rubric_for_user(request: HttpRequest, pk: int) -> Rubric:
    _require_author(request)
    rubric = Rubric.objects.filter(pk=pk).first()
    if rubric is None:
        raise Http404("No such rubric")
    return rubric


def _require_editor(request: HttpRequest, rubric: Rubric) -> None:
    """Changes are for the rubric's owners (can_edit); any other author sees why and may copy it."""
    if not can_edit(request.user, rubric):
        owner = rubric.created_by.get_username() if rubric.created_by else "nobody"
        raise PermissionDenied(
            f"{rubric.name} belongs to {owner} and the projects it is shared with: copy it to change it."
        )


def _get_editable_version(request: HttpRequest, pk: int, number: int) -> RubricVersion:
    version = _get_version_for_user(request, pk, number)
    _require_editor(request, version.rubric)
    return version


def _get_editable_criterion(request: HttpRequest, cid: int) -> Criterion:
    criterion = _get_criterion_for_user(request, cid)
    _require_editor(request, criterion.version.rubric)
    return criterion


def _get_version_for_user(request: HttpRequest, pk: int, number: int) -> RubricVersion:
    rubric = _get_rubric_for_user(request, pk)
    version = rubric.versions.filter(number=number).select_related("rubric").first()
    if version is None:
        raise Http404("No such version")
    return version


def _get_criterion_for_user(request: HttpRequest, cid: int) -> Criterion:
    _require_author(request)
    criterion = Criterion.objects.filter(pk=cid).select_related("version__rubric").first()
    if criterion is None:
        raise Http404("No such criterion")
    return criterion


def _version_url(version: RubricVersion) -> str:
    return reverse("rubric_version", args=[version.rubric_id, version.number])


def _criteria_context(version: RubricVersion, **extra) -> dict:
    return {
        "version": version,
        "rubric": version.rubric,
        "criteria": list(version.criteria.order_by("position", "id")),
        "add_form": CriterionForm(),
        **extra,
    }


def _criteria_response(request: HttpRequest, version: RubricVersion, **extra) -> HttpResponse:
    """After a change to a draft: the criteria list for htmx, the version page otherwise."""
    if request.htmx:
        return render(request, "rubrics/version_form.html#criteria", _criteria_context(version, **extra))
    for error in extra.get("errors", []):
        messages.error(request, error)
    return redirect(_version_url(version))


# --- Rubrics -----------------------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def rubric_list(request: HttpRequest) -> HttpResponse:
    _require_author(request)
    form = RubricForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        rubric = services.rubric_create(
            name=form.cleaned_data["name"], description=form.cleaned_data["description"], user=request.user
        )
        return redirect(_version_url(rubric.versions.get()))
    rubrics = Rubric.objects.order_by("name").prefetch_related("versions")
    return render(
        request, "rubrics/rubric_list.html", {"rubrics": rubrics, "form": form, "import_form": ImportForm()}
    )


@login_required
@require_POST
def rubric_import(request: HttpRequest) -> HttpResponse:
    _require_author(request)
    form = ImportForm(request.POST, request.FILES)
    if not form.is_valid():
        messages.error(request, "Choose a rubric file to import.")
        return redirect("rubric_list")
    upload = form.cleaned_data["file"]
    fmt = form.cleaned_data["format"]
    if fmt == "auto":
        fmt = "yaml" if upload.name.lower().endswith((".yaml", ".yml")) else "json"
    try:
        text = upload.read().decode("utf-8")
        rubric = import_rubric(text, fmt, user=request.user)
    except UnicodeDecodeError:
        messages.error(request, f"{upload.name}: not UTF-8 text.")
        return redirect("rubric_list")
    except RubricFileError as exc:
        for error in exc.errors:
            messages.error(request, f"{upload.name}: {error}")
        return redirect("rubric_list")
    messages.success(request, f"Imported {rubric.name} as a draft.")
    return redirect(_version_url(rubric.versions.get()))


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def rubric_detail(request: HttpRequest, pk: int) -> HttpResponse:
    rubric = _get_rubric_for_user(request, pk)
    editable = can_edit(request.user, rubric)
    if request.method == "POST":
        _require_editor(request, rubric)
    form = RubricForm(request.POST or None, instance=rubric)
    if request.method == "POST" and form.is_valid():
        services.rubric_update(
            rubric=rubric, name=form.cleaned_data["name"], description=form.cleaned_data["description"]
        )
        return redirect("rubric_detail", pk=rubric.pk)
    versions = list(rubric.versions.order_by("-number"))
    projects = research_projects(request.user)
    return render(
        request,
        "rubrics/rubric_detail.html",
        {
            "rubric": rubric,
            "can_edit": editable,
            "share_choices": projects.order_by("name") if editable else [],
            "shared_with": list(rubric.shared_with.filter(deleted_at__isnull=True).order_by("name")),
            "form": form,
            "versions": versions,
            "draft": next((v for v in versions if not v.is_published), None),
            "published": [v for v in versions if v.is_published],
            "pinned_by": {
                v.pk: [p for p in v.projects.filter(deleted_at__isnull=True) if p in projects]
                for v in versions
            },
            "results": rubric_results(rubric, projects),
        },
    )


@login_required
@require_safe
def version_diff(request: HttpRequest, pk: int) -> HttpResponse:
    rubric = _get_rubric_for_user(request, pk)
    versions = list(rubric.versions.order_by("number"))
    try:
        old_number = int(request.GET.get("old") or (versions[-2].number if len(versions) > 1 else 1))
        new_number = int(request.GET.get("new") or versions[-1].number)
    except ValueError:
        raise Http404("No such version")
    old = next((v for v in versions if v.number == old_number), None)
    new = next((v for v in versions if v.number == new_number), None)
    if old is None or new is None:
        raise Http404("No such version")
    return render(
        request,
        "rubrics/version_diff.html",
        {
            "rubric": rubric,
            "versions": versions,
            "old": old,
            "new": new,
            "rows": services.version_diff(old, new),
        },
    )


@login_required
@require_POST
def rubric_copy(request: HttpRequest, pk: int) -> HttpResponse:
    """Any author may copy a rubric they can read: the copy is theirs, a draft of its newest version."""
    rubric = _get_rubric_for_user(request, pk)
    copy = services.rubric_copy(rubric=rubric, user=request.user)
    messages.success(request, f"Copied {rubric.name}: this draft is yours to change.")
    return redirect(_version_url(copy.versions.get()))


@login_required
@require_POST
def rubric_share(request: HttpRequest, pk: int) -> HttpResponse:
    """The owners share the rubric with projects they research on (admins: any): those researchers may change it."""
    rubric = _get_rubric_for_user(request, pk)
    _require_editor(request, rubric)
    allowed = research_projects(request.user)
    chosen = [p for p in allowed.filter(pk__in=[v for v in request.POST.getlist("project") if v.isdigit()])]
    services.rubric_share(rubric=rubric, projects=chosen, allowed=list(allowed), user=request.user)
    messages.success(request, "Sharing saved.")
    return redirect("rubric_detail", pk=rubric.pk)


# --- Versions ----------------------------------------------------------------------------------------------


@login_required
@require_safe
def version_detail(request: HttpRequest, pk: int, number: int) -> HttpResponse:
    version = _get_version_for_user(request, pk, number)
    editing = request.GET.get("edit")
    edited = None
    if editing and editing.isdigit() and not version.is_published:
        edited = version.criteria.filter(pk=int(editing)).first()
    context = _criteria_context(
        version,
        editing=edited.pk if edited else None,
        edit_form=CriterionForm(initial=_criterion_initial(edited), auto_id=f"id_c{edited.pk}_%s")
        if edited
        else None,
        projects=research_projects(request.user).order_by("name"),
        can_edit=can_edit(request.user, version.rubric),
    )
    if request.htmx:
        return render(request, "rubrics/version_form.html#criteria", context)
    return render(request, "rubrics/version_form.html", context)


@login_required
@require_POST
def criterion_add(request: HttpRequest, pk: int, number: int) -> HttpResponse:
    version = _get_editable_version(request, pk, number)
    form = CriterionForm(request.POST)
    if not form.is_valid():
        return _criteria_response(request, version, add_form=form, errors=_form_errors(form))
    try:
        services.criterion_add(version=version, **form.cleaned_data)
    except ValidationError as exc:
        return _criteria_response(request, version, add_form=form, errors=exc.messages)
    return _criteria_response(request, version)


def _form_errors(form) -> list[str]:
    return [f"{field}: {error}" for field, errors in form.errors.items() for error in errors]


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def criterion_edit(request: HttpRequest, cid: int) -> HttpResponse:
    criterion = _get_editable_criterion(request, cid)
    version = criterion.version
    if request.method == "GET":
        if version.is_published:
            raise Http404("Published criteria cannot be edited")
        if request.htmx:
            form = CriterionForm(initial=_criterion_initial(criterion), auto_id=f"id_c{criterion.pk}_%s")
            return render(request, "rubrics/partial/criterion_form.html", {"c": criterion, "form": form})
        return redirect(_version_url(version) + f"?edit={criterion.pk}#c-{criterion.key}")
    form = CriterionForm(request.POST)
    if not form.is_valid():
        return _criteria_response(request, version, errors=_form_errors(form))
    try:
        services.criterion_update(criterion=criterion, **form.cleaned_data)
    except ValidationError as exc:
        return _criteria_response(request, version, errors=exc.messages)
    return _criteria_response(request, version, focus=criterion.key)


def _criterion_initial(criterion: Criterion) -> dict:
    return {f: getattr(criterion, f) for f in ("text", "guidance", "category", "weight", "answer_type")}


@login_required
@require_POST
def criterion_delete(request: HttpRequest, cid: int) -> HttpResponse:
    criterion = _get_editable_criterion(request, cid)
    version = criterion.version
    try:
        services.criterion_delete(criterion=criterion)
    except ValidationError as exc:
        return _criteria_response(request, version, errors=exc.messages)
    return _criteria_response(request, version)


@login_required
@require_POST
def criterion_move(request: HttpRequest, cid: int) -> HttpResponse:
    criterion = _get_editable_criterion(request, cid)
    offset = {"up": -1, "down": 1}.get(request.POST.get("direction", ""))
    if offset is None:
        return HttpResponse("direction must be up or down", status=400)
    try:
        services.criterion_move(criterion=criterion, offset=offset)
    except ValidationError as exc:
        return _criteria_response(request, criterion.version, errors=exc.messages)
    return _criteria_response(request, criterion.version, focus=criterion.key)


@login_required
@require_POST
def criteria_reorder(request: HttpRequest, pk: int, number: int) -> HttpResponse:
    version = _get_editable_version(request, pk, number)
    try:
        services.criteria_reorder(version=version, keys=request.POST.getlist("key"))
    except (ValidationError, ValueError) as exc:
        errors = exc.messages if isinstance(exc, ValidationError) else [str(exc)]
        return _criteria_response(request, version, errors=errors)
    return _criteria_response(request, version)


@login_required
@require_POST
def version_publish(request: HttpRequest, pk: int, number: int) -> HttpResponse:
    version = _get_editable_version(request, pk, number)
    try:
        services.version_publish(version=version, user=request.user)
    except ValidationError as exc:
        for error in exc.messages:
            messages.error(request, error)
        return redirect(_version_url(version))
    messages.success(request, f"Published {version.label}. It can no longer change.")
    return redirect(_version_url(version))


@login_required
@require_POST
def version_new_draft(request: HttpRequest, pk: int, number: int) -> HttpResponse:
    version = _get_editable_version(request, pk, number)
    draft = services.draft_from(version=version, user=request.user)
    return redirect(_version_url(draft))


@login_required
@require_POST
def version_discard(request: HttpRequest, pk: int, number: int) -> HttpResponse:
    version = _get_editable_version(request, pk, number)
    try:
        services.draft_discard(version=version)
    except (ValidationError, IntegrityError):
        messages.error(request, "Only an unused draft can be discarded.")
        return redirect(_version_url(version))
    if not version.rubric.versions.exists():
        version.rubric.delete()
        return redirect("rubric_list")
    return redirect("rubric_detail", pk=pk)


@login_required
@require_safe
def version_export(request: HttpRequest, pk: int, number: int) -> HttpResponse:
    version = _get_version_for_user(request, pk, number)
    fmt = request.GET.get("format", "json")
    if fmt not in ("json", "yaml"):
        raise Http404("Unknown format")
    body = dump_rubric(version, fmt)
    content_type = "application/json" if fmt == "json" else "application/yaml"
    response = HttpResponse(body, content_type=f"{content_type}; charset=utf-8")
    filename = f"rubric-{version.rubric_id}-v{version.number}.{fmt}"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


# --- Preview -----------------------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def version_preview(request: HttpRequest, pk: int, number: int, slug: str) -> HttpResponse:
    """Try a version (usually a draft) on a few comparisons of a project; nothing is stored."""
    version = _get_version_for_user(request, pk, number)
    project, _role = get_project_for_user(request.user, slug, roles=("admin", "researcher"))
    samples = list(
        Comparison.objects.filter(project=project, deleted_at__isnull=True)
        .select_related("item", "response_a", "response_b")
        .order_by("random_key", "id")[:5]
    )
    wanted = request.GET.get("comparison") or request.POST.get("comparison")
    comparison = next((c for c in samples if str(c.pk) == wanted), None)
    if comparison is None and wanted and wanted.isdigit():
        comparison = (
            Comparison.objects.filter(project=project, pk=int(wanted), deleted_at__isnull=True)
            .select_related("item", "response_a", "response_b")
            .first()
        )
    if comparison is None and samples:
        comparison = samples[0]
    checklist = []
    if comparison is not None:
        checklist = services.version_views(version) + services.item_views(comparison.item.criteria)
    answers = services.rubric_answers_from_post(request.POST) if request.method == "POST" else None
    context = {
        "version": version,
        "rubric": version.rubric,
        "project": project,
        "samples": samples,
        "comparison": comparison,
        "checklist": checklist,
        "answers": answers,
        "scores": services.scores_for(checklist, answers, project) if answers is not None else None,
    }
    if request.htmx and request.method == "POST":
        return render(request, "rubrics/preview.html#result", context)
    return render(request, "rubrics/preview.html", context)


# --- Pinning on a project ----------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def project_rubric(request: HttpRequest, slug: str) -> HttpResponse:
    project, _role = get_project_for_user(request.user, slug, roles=("admin", "researcher"))
    form = PinForm(request.POST or None, initial={"version": project.rubric_version})
    if request.method == "POST" and form.is_valid():
        version = form.cleaned_data["version"]
        if version != project.rubric_version:
            services.project_pin_version(project=project, version=version, user=request.user)
            messages.success(
                request, f"{project.name} now uses {version.label}." if version else "Rubric removed."
            )
        return redirect("project_rubric", slug=project.slug)
    return render(request, "rubrics/project_rubric_form.html", {"project": project, "form": form})
