from __future__ import annotations

from django.contrib import admin, messages

from curation import job_leases, models


class ReadOnlyAdmin(admin.ModelAdmin):
    """Lineage is shown, never edited: no add, change or delete (the database refuses them too, see
    curation/triggers.py and rewardtrain/triggers.py); a staff user with the view permission sees every field."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(models.DatasetSnapshot)
class DatasetSnapshotAdmin(ReadOnlyAdmin):
    list_display = ["id", "project", "aggregation", "axis", "pair_count", "content_hash", "created_at"]
    list_filter = ["project", "aggregation", "axis"]
    search_fields = ["content_hash", "name"]


@admin.action(description="Retry the selected failed or cancelled jobs")
def retry_jobs(modeladmin, request, queryset) -> None:
    _each(modeladmin, request, queryset, job_leases.retry, "queued again")


@admin.action(description="Cancel the selected queued or running jobs")
def cancel_jobs(modeladmin, request, queryset) -> None:
    _each(modeladmin, request, queryset, job_leases.cancel, "cancelled")


def _each(modeladmin, request, queryset, act, done: str) -> None:
    """Apply `act` (job_leases.retry / cancel, each audited) to every selected job; say what it did and what not."""
    ok = 0
    for job in queryset.order_by("pk"):
        try:
            act(job, actor=request.user)
            ok += 1
        except job_leases.JobActionError as exc:
            modeladmin.message_user(request, str(exc), messages.WARNING)
    if ok:
        modeladmin.message_user(request, f"{ok} job(s) {done}.", messages.SUCCESS)


class LeasedJobAdmin(admin.ModelAdmin):
    """The lease fields are the worker's and the sweep's; an admin acts through Retry and Cancel."""

    actions = [retry_jobs, cancel_jobs]
    list_filter = ["status"]
    readonly_fields = ["status", "lease_owner", "heartbeat_at", "attempts", "note"]


@admin.register(models.ImportJob)
class ImportJobAdmin(LeasedJobAdmin):
    list_display = [
        "id",
        "project",
        "format",
        "filename",
        "status",
        "progress",
        "attempts",
        "note",
        "created_at",
    ]
    list_filter = ["status", "format"]


@admin.register(models.ExportJob)
class ExportJobAdmin(LeasedJobAdmin):
    list_display = [
        "id",
        "project",
        "format",
        "status",
        "rows",
        "attempts",
        "note",
        "created_at",
        "expires_at",
    ]
    list_filter = ["status", "format"]


@admin.register(models.SnapshotJob)
class SnapshotJobAdmin(LeasedJobAdmin):
    list_display = ["id", "project", "status", "snapshot", "attempts", "note", "created_at", "finished_at"]
