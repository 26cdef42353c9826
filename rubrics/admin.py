from __future__ import annotations

from django.contrib import admin

from . import models


class CriterionInline(admin.TabularInline):
    model = models.Criterion
    extra = 0


@admin.register(models.Rubric)
class RubricAdmin(admin.ModelAdmin):
    list_display = ["name", "created_by", "created_at"]
    search_fields = ["name"]


@admin.register(models.RubricVersion)
class RubricVersionAdmin(admin.ModelAdmin):
    list_display = ["rubric", "number", "status", "published_at"]
    list_filter = ["status"]
    inlines = [CriterionInline]
