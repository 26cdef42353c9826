from __future__ import annotations

from django.contrib import admin

from insights import models


@admin.register(models.Adjudication)
class AdjudicationAdmin(admin.ModelAdmin):
    list_display = ["comparison", "axis", "choice", "decided_by", "created_at"]
    raw_id_fields = ["comparison"]
