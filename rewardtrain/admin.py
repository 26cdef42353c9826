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


@admin.register(models.RubricRewardFit)
class RubricRewardFitAdmin(admin.ModelAdmin):
    """Read-only: a fit is lineage (the database refuses UPDATE and DELETE too)."""

    list_display = ["id", "project", "rubric_version", "snapshot", "model_version", "created_by", "created_at"]
    list_filter = ["project"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(models.EvaluationSet)
class EvaluationSetAdmin(ReadOnlyAdmin):  # frozen: the database refuses UPDATE and DELETE too
    list_display = ["id", "project", "name", "format", "rows", "sha256", "created_at"]
    list_filter = ["project", "format"]


@admin.register(models.ModelComparison)
class ModelComparisonAdmin(ReadOnlyAdmin):  # written by its job
    list_display = ["id", "project", "eval_set", "model_ids", "status", "created_at", "finished_at"]
    list_filter = ["status", "project"]
