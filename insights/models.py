"""What researchers decide after reading the figures: adjudicated labels."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from annotate.models import Axis, Choice, Comparison


class Adjudication(models.Model):
    """A researcher's final label for one comparison and axis: overrides the vote in consensus and export."""

    comparison = models.ForeignKey(Comparison, on_delete=models.CASCADE, related_name="adjudications")
    axis = models.CharField(max_length=12, choices=Axis.choices, default=Axis.OVERALL)
    choice = models.CharField(max_length=3, choices=Choice.choices)
    reason = models.TextField()
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "annotate_adjudication"  # the table keeps its name from before the app split
        constraints = [
            models.UniqueConstraint(fields=["comparison", "axis"], name="adjudication_unique_axis")
        ]
