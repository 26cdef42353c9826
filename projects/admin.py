from __future__ import annotations

from django.contrib import admin

from projects import models


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
