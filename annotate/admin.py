from __future__ import annotations

from django.contrib import admin

from . import models


class MembershipInline(admin.TabularInline):
    model = models.Membership
    extra = 1
    autocomplete_fields = ["user"]


@admin.register(models.Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "overlap_k", "gold_share", "paused", "created_at", "deleted_at"]
    list_filter = ["paused", "ask_safety", "researchers_can_export"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]


@admin.register(models.Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "project", "role", "is_active", "created_at"]
    list_filter = ["role", "is_active", "project"]
    search_fields = ["user__username", "user__email", "project__slug"]
    list_editable = ["role", "is_active"]
    autocomplete_fields = ["user", "project"]


@admin.register(models.Annotator)
class AnnotatorAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "kind", "user", "imported", "flagged"]
    list_filter = ["kind", "imported", "flagged", "project"]
    search_fields = ["name", "user__username"]


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
    list_display = ["id", "project", "comparison", "annotator", "status", "is_gold", "reserved_until"]
    list_filter = ["status", "is_gold", "project"]
    search_fields = ["annotator__name"]
    raw_id_fields = ["comparison", "annotator"]


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
    raw_id_fields = ["comparison", "annotator", "assignment"]
    inlines = [RevisionInline]


@admin.register(models.Adjudication)
class AdjudicationAdmin(admin.ModelAdmin):
    list_display = ["comparison", "axis", "choice", "decided_by", "created_at"]
    raw_id_fields = ["comparison"]


@admin.register(models.DatasetSnapshot)
class DatasetSnapshotAdmin(admin.ModelAdmin):
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


@admin.register(models.AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "action", "actor_name", "project", "target_type", "target_id"]
    list_filter = ["action", "project"]
    search_fields = ["actor_name", "action", "target_id"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_add_permission(self, request) -> bool:
        return False
