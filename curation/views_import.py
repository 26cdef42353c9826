"""The import page: upload a file, follow the background job, read the report. Admins import into any
project, researchers into the projects they research on (and see those projects' imports only)."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_http_methods, require_safe

from curation.importers import FORMATS
from curation.importers.jobs import job_progress, start_import_job
from curation.models import ImportJob
from infra.uploads import DiskUpload, StreamToDiskUploadHandler, UploadTooLarge, human_size
from projects.access import is_admin
from projects.models import Membership, Project


class ImportForm(forms.Form):
    project = forms.ModelChoiceField(queryset=Project.objects.none())
    format = forms.ChoiceField(choices=[(f, f) for f in FORMATS])
    source = forms.CharField(
        max_length=200, required=False, help_text="Name of the source annotator (default: the format)."
    )
    skip_invalid = forms.BooleanField(required=False, label="Skip bad lines (import the good ones)")
    add_harm_categories = forms.BooleanField(
        required=False, label="Add unknown harm categories to the project's list"
    )
    file = forms.FileField(help_text=".jsonl, .jsonl.gz or .parquet")

    def __init__(self, *args, user, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["project"].queryset = importable_projects(user)


def importable_projects(user):
    """Live projects `user` may import into: all for admins, those they research on for researchers."""
    qs = Project.objects.filter(deleted_at__isnull=True).order_by("name")
    if is_admin(user):
        return qs
    return qs.filter(
        memberships__user=user, memberships__is_active=True, memberships__role=Membership.Role.RESEARCHER
    ).distinct()


def _require_importer(request: HttpRequest) -> None:
    if not importable_projects(request.user).exists():
        raise Http404("No such page")


def _get_job_for_user(request: HttpRequest, job_id: int) -> ImportJob:
    _require_importer(request)
    return get_object_or_404(
        ImportJob.objects.select_related("project", "created_by").filter(
            project__in=importable_projects(request.user)
        ),
        pk=job_id,
    )


@csrf_exempt  # the body may only be read after the upload handler is set; _import_new checks CSRF
@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def import_new(request: HttpRequest) -> HttpResponse:
    _require_importer(request)
    if request.method == "POST":
        limit = settings.ARBITER_MAX_UPLOAD_BYTES
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if declared > limit:
            return _too_large(request, limit)
        request.upload_handlers = [StreamToDiskUploadHandler(request, limit=limit)]
        try:
            return _import_new(request)
        except UploadTooLarge as e:
            return _too_large(request, e.limit)
    return _import_new(request)


def _too_large(request: HttpRequest, limit: int) -> HttpResponse:
    response = render(
        request,
        "curation/import_new.html",
        {
            "form": ImportForm(user=request.user),
            "jobs": _recent_jobs(request.user),
            "limit": human_size(limit),
            "too_large": f"The file is larger than the upload limit of {human_size(limit)}; nothing was stored.",
        },
        status=413,
    )
    response["Connection"] = "close"
    return response


def _recent_jobs(user):
    jobs = ImportJob.objects.select_related("project", "created_by").order_by("-created_at")
    return jobs.filter(project__in=importable_projects(user))[:20]


@csrf_protect
def _import_new(request: HttpRequest) -> HttpResponse:
    form = ImportForm(request.POST or None, request.FILES or None, user=request.user)
    if request.method == "POST":
        upload = request.FILES.get("file")
        if form.is_valid():
            data = form.cleaned_data
            job = start_import_job(
                project=data["project"],
                actor=request.user,
                upload=upload,
                fmt=data["format"],
                source=data["source"],
                skip_invalid=data["skip_invalid"],
                add_harm_categories=data["add_harm_categories"],
            )
            return redirect("import_job", job_id=job.pk)
        if isinstance(upload, DiskUpload):
            upload.discard()
    return render(
        request,
        "curation/import_new.html",
        {
            "form": form,
            "jobs": _recent_jobs(request.user),
            "limit": human_size(settings.ARBITER_MAX_UPLOAD_BYTES),
        },
    )


@login_required
@require_safe
def import_job(request: HttpRequest, job_id: int) -> HttpResponse:
    job = _get_job_for_user(request, job_id)
    report = job.report if job.status in (ImportJob.Status.SUCCEEDED, ImportJob.Status.FAILED) else None
    if job.status == ImportJob.Status.CANCELLED:  # rolled back (curation/job_leases.py): nothing to report
        report = {"error": job.note or "cancelled"}
    context = {
        "job": job,
        "progress": job_progress(job),
        "report": report,
        "done": report is not None,
    }
    template = "curation/import_job.html#status" if request.htmx else "curation/import_job.html"
    return render(request, template, context)
