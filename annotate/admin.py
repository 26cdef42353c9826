from __future__ import annotations

from django.contrib import admin

from annotate import models


@admin.register(models.Item)
class ItemAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "source", "created_at", "deleted_at"]
    list_filter = ["project", "source"]
    search_fields = ["prompt_key", "source"]
    readonly_fields = ["prompt_key"]


@admin.register(models.Response)
class ResponseAdmin(admin.ModelAdmin):
    list_display = ["id", "item", "model_name"]
    search_fields = ["text", "model_name", "text_key"]
    raw_id_fields = ["item"]


@admin.register(models.Comparison)
class ComparisonAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "item", "crowd_judgments", "extra_k", "created_at"]
    list_filter = ["project"]
    search_fields = ["pair_key"]
    raw_id_fields = ["item", "response_a", "response_b"]


@admin.register(models.Gold)
class GoldAdmin(admin.ModelAdmin):
    list_display = ["comparison", "choice", "origin", "created_at"]
    list_filter = ["origin", "choice"]
    raw_id_fields = ["comparison"]


@admin.register(models.Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "comparison", "item", "annotator", "status", "is_gold", "reserved_until"]
    list_filter = ["status", "is_gold", "project"]
    search_fields = ["annotator__name"]
    raw_id_fields = ["comparison", "item", "annotator"]


class RevisionInline(admin.TabularInline):
    model = models.JudgmentRevision
    extra = 0
    can_delete = False
    fields = ["number", "choice", "preference", "helpfulness", "harmlessness", "created_at", "submission_id"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(models.Judgment)
class JudgmentAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "project",
        "comparison",
        "annotator",
        "choice",
        "preference",
        "revision_count",
        "imported",
    ]
    list_filter = ["project", "imported", "is_source", "is_gold", "choice"]
    search_fields = ["annotator__name", "justification"]
    raw_id_fields = ["comparison", "annotator", "assignment", "ranking"]
    inlines = [RevisionInline]


class RankingRevisionInline(admin.TabularInline):
    model = models.RankingRevision
    extra = 0
    can_delete = False
    fields = ["number", "tiers", "all_bad", "created_at", "submission_id"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(models.Ranking)
class RankingAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "item", "annotator", "all_bad", "revision_count", "imported"]
    list_filter = ["project", "imported", "is_source", "is_gold", "all_bad"]
    search_fields = ["annotator__name", "justification"]
    raw_id_fields = ["item", "annotator", "assignment"]
    inlines = [RankingRevisionInline]
