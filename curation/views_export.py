"""Pages for snapshots, exports (background jobs with expiring download links) and API tokens."""

from __future__ import annotations

from pathlib import Path

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from curation.exporters import (
    FORMATS,
    STYLES,
    ExportError,
    can_export,
    card_path_for,
    download_token,
    job_for_token,
    start_export_job,
)
from curation.models import ExportJob, SnapshotJob
from curation.snapshot_jobs import pending_snapshot_jobs, start_snapshot_job
from insights.consensus import AGGREGATIONS, AXES, EXCLUDES, ConsensusError
from projects.access import get_project_for_user, is_admin
from projects.api_auth import create_token, revoke_token
from projects.models import ApiToken, Project


class SnapshotForm(forms.Form):
    name = forms.CharField(max_length=200, required=False)
    aggregate = forms.ChoiceField(choices=[(a, a) for a in AGGREGATIONS], initial="majority")
    axis = forms.ChoiceField(choices=[(a, a) for a in AXES], initial="overall")
    exclude = forms.MultipleChoiceField(
        choices=[(e, e) for e in EXCLUDES], required=False, widget=forms.CheckboxSelectMultiple
    )
    min_agreement = forms.FloatField(required=False, min_value=0, max_value=1)


class ExportForm(SnapshotForm):
    snapshot = forms.TypedChoiceField(coerce=int, empty_value=None, required=False)
    format = forms.ChoiceField(choices=[(f, f) for f in FORMATS], initial="trl")
    style = forms.ChoiceField(choices=[(s, s) for s in STYLES], initial="conversational")
    margin = forms.BooleanField(required=False, help_text="trl: add the human margin")
    gzip = forms.BooleanField(required=False)
    parquet = forms.BooleanField(required=False)
    with_names = forms.BooleanField(required=False, help_text="raw: annotator names (admins; recorded)")

    def __init__(self, *args, project: Project, admin: bool, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["snapshot"].choices = [("", "A new snapshot from the options below")] + [
            (
                s.pk,
                f"#{s.pk} {s.name} · {s.aggregation}/{s.axis} · {s.pair_count} pairs · {s.content_hash[:12]}",
            )
            for s in project.snapshots.all()[:100]
        ]
        if not admin:
            del self.fields["with_names"]


def _get_research_project_for_user(request: HttpRequest, slug: str) -> Project:
    return get_project_for_user(request.user, slug, roles=("admin", "researcher"))[0]


def _get_export_project_for_user(request: HttpRequest, slug: str) -> Project:
    project = _get_research_project_for_user(request, slug)
    if not can_export(request.user, project):
        raise Http404("No such project")
    return project


def _snapshot_job_from_form(
    project: Project, user, data: dict, then_export: dict | None = None
) -> SnapshotJob:
    """Queue the snapshot the form asks for (`ConsensusError` at once on a bad option; nothing queued)."""
    return start_snapshot_job(
        project=project,
        actor=user,
        aggregation=data["aggregate"],
        axis=data["axis"],
        exclude=data["exclude"],
        min_agreement=data["min_agreement"],
        name=data["name"],
        then_export=then_export,
    )


def _snapshot_jobs_context(project: Project) -> dict:
    jobs = pending_snapshot_jobs(project)
    return {"snapshot_jobs": jobs, "snapshots_pending": any(j.status in ("queued", "running") for j in jobs)}


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def snapshot_list(request: HttpRequest, slug: str) -> HttpResponse:
    project = _get_research_project_for_user(request, slug)
    form = SnapshotForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            job = _snapshot_job_from_form(project, request.user, form.cleaned_data)
        except ConsensusError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(
                request, f"Snapshot job {job.pk} queued; the snapshot appears below when it is made."
            )
            return redirect("snapshot_list", slug=project.slug)
    context = {
        "project": project,
        "form": form,
        "snapshots": project.snapshots.select_related("created_by")[:200],
        "can_export": can_export(request.user, project),
        **_snapshot_jobs_context(project),
    }
    if request.htmx and request.method == "GET":
        return render(request, "curation/snapshot_list.html#pending", context)
    return render(request, "curation/snapshot_list.html", context)


def _jobs(project: Project, user) -> list[tuple[ExportJob, str | None]]:
    jobs = project.export_jobs.select_related("snapshot", "created_by").order_by("-created_at")[:50]
    return [
        (job, download_token(job, user) if job.status == ExportJob.Status.SUCCEEDED else None) for job in jobs
    ]


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def export_page(request: HttpRequest, slug: str) -> HttpResponse:
    project = _get_export_project_for_user(request, slug)
    admin = is_admin(request.user)
    form = ExportForm(request.POST or None, project=project, admin=admin)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        options = {
            "style": data["style"],
            "margin": data["margin"],
            "gzip": data["gzip"],
            "parquet": data["parquet"],
            "with_names": bool(admin and data.get("with_names")),
            "via": "page",
        }
        try:
            if data["snapshot"]:
                snapshot = project.snapshots.filter(pk=data["snapshot"]).first()
                if snapshot is None:
                    raise Http404("No such snapshot")
                job = start_export_job(
                    project=project,
                    actor=request.user,
                    snapshot=snapshot,
                    fmt=data["format"],
                    options=options,
                )
                queued = f"Export {job.pk} queued."
            else:  # a new snapshot first: its job starts the export once the snapshot is made
                job = _snapshot_job_from_form(
                    project, request.user, data, then_export={"format": data["format"], "options": options}
                )
                queued = f"Snapshot job {job.pk} queued; its export starts when the snapshot is made."
        except (ConsensusError, ExportError) as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, queued)
            return redirect("export_page", slug=project.slug)
    jobs = _jobs(project, request.user)
    snapshot_jobs = _snapshot_jobs_context(project)
    context = {
        "project": project,
        "form": form,
        "jobs": jobs,
        "running": snapshot_jobs["snapshots_pending"]
        or any(j.status in ("queued", "running") for j, _ in jobs),
        **snapshot_jobs,
    }
    if request.htmx and request.method == "GET":
        return render(request, "curation/export_page.html#jobs", context)
    return render(request, "curation/export_page.html", context)


@login_required
@require_safe
def export_download(request: HttpRequest, token: str) -> FileResponse:
    job = job_for_token(token, request.user)
    path = Path(job.path)
    if request.GET.get("part") == "card":
        path = card_path_for(path)
        if not path.exists():
            raise Http404("No card")
        return FileResponse(
            open(path, "rb"), as_attachment=True, filename=path.name, content_type="text/markdown"
        )  # noqa: SIM115
    return FileResponse(open(path, "rb"), as_attachment=True, filename=path.name)  # noqa: SIM115


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def token_list(request: HttpRequest) -> HttpResponse:
    new_token = None
    if request.method == "POST":
        _, new_token = create_token(user=request.user, name=request.POST.get("name", ""))
    tokens = ApiToken.objects.filter(user=request.user).order_by("-created_at")
    return render(
        request,
        "curation/tokens.html",
        {"tokens": tokens, "new_token": new_token, "docs_url": reverse("api:openapi-view")},
    )


@login_required
@require_POST
def token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    if not revoke_token(user=request.user, token_id=token_id):
        raise Http404("No such token")
    messages.success(request, "Token revoked.")
    return redirect("token_list")
