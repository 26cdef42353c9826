from __future__ import annotations

import pytest

from annotate.models import Comparison, Judgment
from curation.importers import ImportFailed, import_file
from projects.models import BEAVERTAILS_CATEGORIES

from .importing import counts, error_lines, fixture, parquet_of, read_rows


@pytest.mark.django_db
def test_safe_rlhf_labels_become_one_source_judgment_per_pair(project):
    report = import_file(fixture("safe_rlhf_good.jsonl"), project=project, fmt="safe-rlhf", source="pku")
    assert (report.comparisons_created, report.judgments_created) == (2, 2)
    c = Comparison.objects.get(
        project=project, item__prompt__0__content="How can I find someone's home address?"
    )
    assert c.response_a.model_name == "alpaca-7b"
    j = Judgment.objects.get(comparison=c)
    assert j.annotator.name == "pku" and j.is_source and j.imported
    assert (j.choice, j.helpfulness, j.harmlessness, j.preference) == ("a", "a", "a", None)
    assert (j.a_safe, j.b_safe) == (True, False)
    assert (j.a_harm_categories, j.b_harm_categories) == ([], ["privacy_violation"])
    assert (j.a_severity, j.b_severity) == (None, "moderate")
    dog = Judgment.objects.get(comparison__item__prompt__0__content="Is it ok to kick a dog?")
    assert (dog.choice, dog.harmlessness, dog.a_severity, dog.a_harm_categories) == (
        "b",
        "b",
        "severe",
        ["animal_abuse"],
    )


@pytest.mark.django_db
def test_bad_safe_rlhf_lines_name_the_field(project):
    before = counts(project)
    with pytest.raises(ImportFailed) as failed:
        import_file(fixture("safe_rlhf_bad.jsonl"), project=project, fmt="safe-rlhf")
    report = failed.value.report
    assert error_lines(report) == [
        (2, "response_0_harm_category.Endangering National Security"),
        (3, "response_0_severity_level"),
        (4, "better_response_id"),
        (5, "is_response_0_safe"),
        (6, "response_0_severity_level"),
    ]
    assert "unknown harm category" in report.errors[0].message
    assert counts(project) == before


@pytest.mark.django_db
def test_unknown_harm_categories_are_added_when_asked(project):
    with pytest.raises(ImportFailed):
        import_file(fixture("safe_rlhf_newcats.jsonl"), project=project, fmt="safe-rlhf")
    report = import_file(
        fixture("safe_rlhf_newcats.jsonl"), project=project, fmt="safe-rlhf", add_harm_categories=True
    )
    assert report.judgments_created == 1
    project.refresh_from_db()
    assert project.harm_categories == [*BEAVERTAILS_CATEGORIES, "Endangering National Security"]
    j = Judgment.objects.get(project=project)
    assert j.b_harm_categories == ["Endangering National Security"]


@pytest.mark.django_db
def test_safe_rlhf_from_parquet(project, tmp_path):
    path = parquet_of(read_rows(fixture("safe_rlhf_good.jsonl")), tmp_path / "pku.parquet")
    report = import_file(path, project=project, fmt="safe-rlhf")
    assert (report.total_lines, report.comparisons_created, report.judgments_created) == (2, 2, 2)
    j = Judgment.objects.get(comparison__item__prompt__0__content="Is it ok to kick a dog?")
    assert j.a_harm_categories == ["animal_abuse"]


@pytest.mark.django_db
def test_safe_rlhf_pair_in_the_other_order_swaps_every_side_field(project, tmp_path):
    import_file(fixture("safe_rlhf_good.jsonl"), project=project, fmt="safe-rlhf")
    row = read_rows(fixture("safe_rlhf_good.jsonl"))[0]
    swapped = {"prompt": row["prompt"], "better_response_id": 1, "safer_response_id": 1}
    for old, new in ((0, 1), (1, 0)):
        for key in (
            "response_{}",
            "is_response_{}_safe",
            "response_{}_harm_category",
            "response_{}_severity_level",
        ):
            swapped[key.format(new)] = row[key.format(old)]
    path = tmp_path / "swapped.jsonl"
    path.write_text(__import__("json").dumps(swapped) + "\n")
    import_file(path, project=project, fmt="safe-rlhf", source="second")
    j = Judgment.objects.get(annotator__name="second")
    # Relative to the canonical order the labels are the same as the first source's.
    assert (j.choice, j.harmlessness, j.a_safe, j.b_safe, j.b_severity) == ("a", "a", True, False, "moderate")
    assert j.b_harm_categories == ["privacy_violation"]
