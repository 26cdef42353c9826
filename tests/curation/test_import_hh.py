from __future__ import annotations

import pytest

from annotate.models import Comparison, Judgment
from curation.importers import ImportFailed, import_file

from .importing import HH_SLICE, counts, error_lines, fixture


@pytest.mark.django_db
def test_good_hh_file_splits_prompt_and_final_responses(project):
    report = import_file(fixture("hh_good.jsonl"), project=project, fmt="hh")
    assert (report.ok_lines, report.comparisons_created, report.judgments_created) == (3, 3, 3)
    c = Comparison.objects.get(project=project, response_b__text="No.")
    assert c.item.prompt == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Tell me a joke"},
    ]
    assert c.response_a.text == "Why did the chicken cross the road?"
    assert Judgment.objects.get(comparison=c).choice == "a"


@pytest.mark.django_db
def test_an_empty_response_is_legal(project):
    import_file(fixture("hh_good.jsonl"), project=project, fmt="hh")
    c = Comparison.objects.get(project=project, response_b__text="Nothing.")
    assert c.response_a.text == ""


@pytest.mark.django_db
def test_bad_hh_lines_are_reported_and_nothing_is_committed(project):
    before = counts(project)
    with pytest.raises(ImportFailed) as failed:
        import_file(fixture("hh_bad.jsonl"), project=project, fmt="hh")
    report = failed.value.report
    assert error_lines(report) == [(2, "rejected"), (3, "chosen"), (4, "rejected"), (5, "rejected")]
    assert report.errors[0].message == "the prompts of chosen and rejected differ"
    assert "identical" in report.errors[2].message
    assert "must be a string" in report.errors[3].message
    assert counts(project) == before


@pytest.mark.django_db
def test_real_hh_slice_imports_with_skip_invalid_reporting_the_five_differing_prompts(project):
    report = import_file(HH_SLICE, project=project, fmt="hh", skip_invalid=True)
    assert report.committed
    assert report.total_lines == 298
    assert error_lines(report) == [(n, "rejected") for n in (294, 295, 296, 297, 298)]
    assert {e.message for e in report.errors} == {"the prompts of chosen and rejected differ"}
    assert report.ok_lines == report.comparisons_created == report.judgments_created == 293
    # Four records end with an empty chosen response.
    assert Comparison.objects.filter(project=project, response_a__text="").count() == 4


@pytest.mark.django_db
def test_real_hh_slice_without_skip_invalid_commits_nothing(project):
    with pytest.raises(ImportFailed) as failed:
        import_file(HH_SLICE, project=project, fmt="hh")
    assert failed.value.report.bad_lines == 5
    assert counts(project)["comparisons"] == 0
