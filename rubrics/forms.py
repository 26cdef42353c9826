from __future__ import annotations

from django import forms

from .models import Criterion, Rubric, RubricVersion


class RubricForm(forms.ModelForm):
    class Meta:
        model = Rubric
        fields = ["name", "description"]
        widgets = {"description": forms.Textarea(attrs={"rows": 3})}


class CriterionForm(forms.Form):
    text = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), max_length=2000)
    guidance = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}), required=False, help_text="Shown to annotators."
    )
    category = forms.ChoiceField(choices=Criterion.Category.choices, initial="important")
    weight = forms.FloatField(
        required=False, help_text="Leave empty for the category's default (5 / 3 / 1 / −2)."
    )
    answer_type = forms.ChoiceField(choices=Criterion.AnswerType.choices, initial="yes_no")


class ImportForm(forms.Form):
    file = forms.FileField()
    format = forms.ChoiceField(
        choices=[("auto", "From the file name"), ("json", "JSON"), ("yaml", "YAML")], initial="auto"
    )


class PinForm(forms.Form):
    version = forms.ModelChoiceField(
        queryset=RubricVersion.objects.none(), required=False, empty_label="No rubric"
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["version"].queryset = (
            RubricVersion.objects.filter(status=RubricVersion.Status.PUBLISHED)
            .select_related("rubric")
            .order_by("rubric__name", "number")
        )
        self.fields["version"].label_from_instance = lambda v: v.label
