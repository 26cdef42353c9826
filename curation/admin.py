from __future__ import annotations

from django.contrib import admin

from curation import models


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


@admin.register(models.ImportJob)
class ImportJobAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "format", "filename", "status", "progress", "created_at"]
    list_filter = ["status", "format"]


@admin.register(models.ExportJob)
class ExportJobAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "format", "status", "rows", "created_at", "expires_at"]
    list_filter = ["status", "format"]


@admin.register(models.SnapshotJob)
class SnapshotJobAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "status", "snapshot", "created_at", "finished_at"]
    list_filter = ["status"]
