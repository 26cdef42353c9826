from __future__ import annotations

import pytest

from annotate.models import Comparison, Judgment
from curation.importers import ImportFailed, import_file
from projects.models import Annotator, AuditEvent

from .importing import counts, error_lines, fixture, gzipped


@pytest.mark.django_db
def test_good_trl_file_creates_pairs_and_source_labels(project):
    report = import_file(fixture("trl_good.jsonl"), project=project, fmt="trl")
    assert report.committed
    assert (report.total_lines, report.ok_lines, report.bad_lines) == (4, 4, 0)
    assert report.comparisons_created == 4
    assert report.items_created == 3  # lines 1 and 4 share a prompt
    assert report.responses_created == 7
    source = Annotator.objects.get(project=project, name="trl")
    assert source.kind == Annotator.Kind.SOURCE and source.imported
    judgments = Judgment.objects.filter(project=project)
    assert judgments.count() == 4
    assert {(j.choice, j.preference, j.is_source, j.imported, j.revision_count) for j in judgments} == {
        ("a", None, True, True, 1)
    }
    assert all(j.revisions.count() == 1 for j in judgments)
    event = AuditEvent.objects.get(project=project, action="import")
    assert (event.data["comparisons_created"], event.data["committed"], event.target_id) == (
        4,
        True,
        "trl_good.jsonl",
    )
    # A source label never counts toward k.
    assert set(Comparison.objects.filter(project=project).values_list("crowd_judgments", flat=True)) == {0}


@pytest.mark.django_db
def test_implicit_prompt_conversations_share_their_prefix(project):
    import_file(fixture("trl_good.jsonl"), project=project, fmt="trl")
    c = Comparison.objects.get(project=project, response_a__text="Hello! How can I help?")
    assert c.item.prompt == [{"role": "user", "content": "Hi"}]
    assert c.response_b.text == "What do you want?"


@pytest.mark.django_db
def test_bad_trl_lines_are_reported_by_number_and_nothing_is_committed(project):
    before = counts(project)
    with pytest.raises(ImportFailed) as failed:
        import_file(fixture("trl_bad.jsonl"), project=project, fmt="trl")
    report = failed.value.report
    assert not report.committed
    assert error_lines(report) == [
        (2, None),
        (3, None),
        (4, "rejected"),
        (5, "rejected"),
        (7, "prompt[0].role"),
        (8, "margin"),
    ]
    assert "invalid JSON" in report.errors[0].message
    assert "not a JSON object" in report.errors[1].message
    assert report.errors[2].message == "missing"
    assert "identical" in report.errors[3].message
    assert (report.total_lines, report.ok_lines, report.bad_lines) == (8, 2, 6)
    assert counts(project) == before


@pytest.mark.django_db
def test_skip_invalid_imports_the_good_lines_and_reports_the_rest(project):
    report = import_file(fixture("trl_bad.jsonl"), project=project, fmt="trl", skip_invalid=True)
    assert report.committed
    assert [line for line, _ in error_lines(report)] == [2, 3, 4, 5, 7, 8]
    assert report.comparisons_created == 2
    assert counts(project)["comparisons"] == 2


@pytest.mark.django_db
def test_reimporting_the_same_file_adds_nothing(project, tmp_path):
    import_file(fixture("trl_good.jsonl"), project=project, fmt="trl")
    after_first = counts(project)
    report = import_file(gzipped(fixture("trl_good.jsonl"), tmp_path), project=project, fmt="trl")
    assert report.comparisons_created == report.judgments_created == report.items_created == 0
    assert report.duplicates == 4
    assert {k: v for k, v in counts(project).items() if k != "imports"} == {
        k: v for k, v in after_first.items() if k != "imports"
    }


@pytest.mark.django_db
def test_the_same_pair_in_the_other_order_flips_the_label(project):
    import_file(fixture("trl_good.jsonl"), project=project, fmt="trl")
    report = import_file(fixture("trl_flipped.jsonl"), project=project, fmt="trl", source="other-source")
    assert report.comparisons_created == 0 and report.judgments_created == 1
    # Canonical order = first arrival: A is still the boiled egg.
    c = Comparison.objects.get(
        project=project,
        response_a__text="Put it in boiling water for 8 minutes.",
        response_b__text="Microwave it.",
    )
    labels = dict(Judgment.objects.filter(comparison=c).values_list("annotator__name", "choice"))
    assert labels == {"trl": "a", "other-source": "b"}
