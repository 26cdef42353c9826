from __future__ import annotations

from django.contrib import admin

from . import models


@admin.register(models.TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "objective", "queue", "status", "attempt", "heartbeat_at", "created_at"]
    list_filter = ["status", "objective", "queue", "project"]
    search_fields = ["base_model"]


@admin.register(models.ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "kind", "is_active", "snapshot_hash", "created_at"]
    list_filter = ["kind", "is_active", "project"]
