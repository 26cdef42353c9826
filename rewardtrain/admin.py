from __future__ import annotations

from django.contrib import admin

from curation.admin import ReadOnlyAdmin

from . import models


@admin.register(models.TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "objective", "queue", "status", "attempt", "heartbeat_at", "created_at"]
    list_filter = ["status", "objective", "queue", "project"]
    search_fields = ["base_model"]


@admin.register(models.ModelVersion)
class ModelVersionAdmin(ReadOnlyAdmin):  # activate a version on the model page (an audited service)
    list_display = ["id", "project", "kind", "is_active", "snapshot_hash", "created_at"]
    list_filter = ["kind", "is_active", "project"]
