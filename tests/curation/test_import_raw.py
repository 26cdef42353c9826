from __future__ import annotations

import pytest

from annotate.models import Comparison, Judgment, JudgmentRevision
from curation.importers import ImportFailed, import_file
from projects.models import Annotator

from .importing import counts, error_lines, fixture


@pytest.mark.django_db
def test_raw_rows_build_revision_histories_of_named_annotators(project):
    report = import_file(fixture("raw_good.jsonl"), project=project, fmt="raw")
    assert (report.comparisons_created, report.judgments_created, report.revisions_created) == (2, 3, 4)
    assert any("rubric" in note for note in report.notes)
    alice = Annotator.objects.get(project=project, name="alice")
    assert (alice.kind, alice.imported, alice.user) == (Annotator.Kind.CROWD, True, None)
    j = Judgment.objects.get(annotator=alice)
    # The judgment mirrors its latest revision.
    assert (j.preference, j.choice, j.revision_count) == (1, "b", 2)
    assert j.justification.startswith("On reflection")
    assert list(j.revisions.values_list("number", "preference", "submission_id")) == [
        (1, -2, "s-alice-1"),
        (2, 1, "s-alice-2"),
    ]
    assert j.created_at.isoformat() == "2024-05-01T10:00:00+00:00"
    assert j.updated_at.isoformat() == "2024-05-01T10:05:00+00:00"
    assert not j.is_source and j.imported


@pytest.mark.django_db
def test_raw_row_naming_the_pair_in_the_other_order_is_flipped(project):
    import_file(fixture("raw_good.jsonl"), project=project, fmt="raw")
    bob = Judgment.objects.get(annotator__name="bob")
    assert bob.comparison.response_a.text == "Hello there!"  # alice's row arrived first
    assert (bob.preference, bob.choice, bob.helpfulness, bob.harmlessness) == (3, "b", "b", "tie")


@pytest.mark.django_db
def test_raw_crowd_counter_and_safety_fields(project):
    import_file(fixture("raw_good.jsonl"), project=project, fmt="raw")
    greeting = Comparison.objects.get(project=project, response_a__text="Hello there!")
    assert greeting.crowd_judgments == 2
    carol = Judgment.objects.get(annotator__name="carol")
    assert (carol.choice, carol.preference, carol.b_safe, carol.b_severity) == ("a", None, False, "severe")
    assert carol.comparison.response_b.model_name == "bad-llm"


@pytest.mark.django_db
def test_raw_reimport_adds_nothing(project):
    import_file(fixture("raw_good.jsonl"), project=project, fmt="raw")
    before = counts(project)
    report = import_file(fixture("raw_good.jsonl"), project=project, fmt="raw")
    assert (report.judgments_created, report.revisions_created, report.duplicates) == (0, 0, 4)
    after = counts(project)
    assert after["revisions"] == before["revisions"] == 4
    assert Comparison.objects.get(project=project, response_a__text="Hello there!").crowd_judgments == 2


@pytest.mark.django_db
def test_bad_raw_rows(project):
    before = counts(project)
    with pytest.raises(ImportFailed) as failed:
        import_file(fixture("raw_bad.jsonl"), project=project, fmt="raw")
    report = failed.value.report
    assert error_lines(report) == [
        (2, "mood"),
        (3, "preference"),
        (4, "choice"),
        (5, "a_severity"),
        (6, "a_severity"),
        (7, "created_at"),
        (8, "a_harm_categories[0]"),
        (9, "rubric.a.c1"),
    ]
    assert report.errors[0].message == "unknown field"
    assert counts(project) == before
    assert JudgmentRevision.objects.count() == 0


@pytest.mark.django_db
def test_raw_annotator_name_of_a_source_is_refused(project):
    import_file(fixture("trl_good.jsonl"), project=project, fmt="trl", source="alice")
    with pytest.raises(ImportFailed) as failed:
        import_file(fixture("raw_good.jsonl"), project=project, fmt="raw")
    assert error_lines(failed.value.report) == [(1, "annotator"), (2, "annotator")]


@pytest.mark.django_db
def test_rows_without_revision_numbers_are_revisions_in_file_order_and_reimport_adds_nothing(
    project, tmp_path
):
    rows = [
        {"prompt": "p", "response_a": "x", "response_b": "y", "annotator": "dave", "choice": "a"},
        {"prompt": "p", "response_a": "y", "response_b": "x", "annotator": "dave", "choice": "a"},
    ]
    path = tmp_path / "votes.jsonl"
    path.write_text("".join(__import__("json").dumps(r) + "\n" for r in rows))
    import_file(path, project=project, fmt="raw")
    j = Judgment.objects.get(annotator__name="dave")
    assert list(j.revisions.values_list("number", "choice")) == [(1, "a"), (2, "b")]
    assert (j.choice, j.revision_count) == ("b", 2)
    report = import_file(path, project=project, fmt="raw")
    assert (report.revisions_created, report.duplicates) == (0, 2)


@pytest.mark.django_db
def test_raw_votes_spread_over_many_batches_give_what_one_batch_gives(
    project, other_project, tmp_path, monkeypatch
):
    """The pairs, judgments, revisions and crowd counts do not depend on where the batches end: later batches
    find the items, responses, comparisons and judgments of earlier ones (and their canonical order)."""
    import orjson

    import curation.importers as importers

    rows = []
    for i in range(3):
        for name, flip, revisions in (("ann", False, 2), ("bea", True, 1), ("cid", False, 1)):
            for number in range(1, revisions + 1):
                a, b = f"answer {i} a", f"answer {i} b"
                rows.append(
                    {
                        "prompt": f"Question {i}",
                        "response_a": b if flip else a,
                        "response_b": a if flip else b,
                        "annotator": name,
                        "preference": (-1 if flip else 1) * ((number + i) % 4),
                        "revision": number,
                    }
                )
    rows = rows[1::2] + rows[::2]  # a pair's rows in different batches, some flipped pairs first
    path = tmp_path / "votes.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))

    def outcome(p):
        return sorted(
            Judgment.objects.filter(project=p).values_list(
                "comparison__pair_key",
                "comparison__response_a__text",
                "comparison__crowd_judgments",
                "annotator__name",
                "preference",
                "revision_count",
            )
        )

    whole = import_file(path, project=project, fmt="raw")
    monkeypatch.setattr(importers, "BATCH_LINES", 2)
    batched = import_file(path, project=other_project, fmt="raw")
    assert outcome(project) == outcome(other_project)
    assert [
        (r.comparisons_created, r.judgments_created, r.revisions_created, r.duplicates)
        for r in (whole, batched)
    ] == [(3, 9, 12, 0)] * 2
    assert JudgmentRevision.objects.filter(judgment__project=other_project).count() == 12
    again = import_file(path, project=other_project, fmt="raw")
    assert (again.judgments_created, again.revisions_created, again.duplicates) == (0, 0, 12)
