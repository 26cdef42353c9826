from __future__ import annotations

import pytest

from annotate.models import Comparison, Item, Judgment
from curation.importers import ImportFailed, import_file

from .importing import counts, error_lines, fixture, gzipped, parquet_of


@pytest.mark.django_db
def test_generic_makes_all_pairs_and_no_labels(project):
    report = import_file(fixture("generic_good.jsonl"), project=project, fmt="generic")
    assert (report.items_created, report.responses_created, report.comparisons_created) == (3, 7, 5)
    assert Judgment.objects.filter(project=project).count() == 0
    haiku = Item.objects.get(project=project, prompt__0__content="Write a haiku about rain.")
    assert haiku.criteria == [{"text": "Is it 5-7-5?", "category": "essential"}]
    assert haiku.responses.get(text="Grey clouds weep softly").model_name == "model-b"
    pairs = {(c.response_a.text, c.response_b.text) for c in Comparison.objects.filter(item=haiku)}
    assert pairs == {
        ("Rain taps on the roof", "Grey clouds weep softly"),
        ("Rain taps on the roof", "Puddles everywhere"),
        ("Grey clouds weep softly", "Puddles everywhere"),
    }
    keys = list(Comparison.objects.filter(project=project).values_list("random_key", flat=True))
    assert len(set(keys)) == 5 and all(0 <= k < 1 for k in keys)


@pytest.mark.django_db
def test_generic_pairs_chosen_at_random_are_seeded(project, other_project):
    a = import_file(fixture("generic_good.jsonl"), project=project, fmt="generic", generic_pairs=1, seed=7)
    b = import_file(
        fixture("generic_good.jsonl"), project=other_project, fmt="generic", generic_pairs=1, seed=7
    )
    assert a.comparisons_created == b.comparisons_created == 3

    def picked(p):
        return sorted(
            Comparison.objects.filter(project=p).values_list("response_a__text", "response_b__text")
        )

    assert picked(project) == picked(other_project)


@pytest.mark.django_db
def test_bad_generic_lines(project):
    before = counts(project)
    with pytest.raises(ImportFailed) as failed:
        import_file(fixture("generic_bad.jsonl"), project=project, fmt="generic")
    report = failed.value.report
    assert error_lines(report) == [
        (1, "responses"),
        (2, "responses"),
        (3, "responses"),
        (4, "responses[2]"),
        (6, "responses[1].text"),
        (7, "prompt"),
    ]
    assert "more than 16" in report.errors[0].message
    assert "identical to responses[0]" in report.errors[3].message
    assert counts(project) == before


@pytest.mark.django_db
def test_generic_reimport_from_gzip_adds_nothing(project, tmp_path):
    import_file(fixture("generic_good.jsonl"), project=project, fmt="generic")
    before = counts(project)
    report = import_file(gzipped(fixture("generic_good.jsonl"), tmp_path), project=project, fmt="generic")
    assert report.comparisons_created == 0 and report.duplicates == 5
    assert counts(project)["comparisons"] == before["comparisons"]


@pytest.mark.django_db
def test_generic_from_parquet_in_several_record_batches(project, tmp_path):
    rows = [{"prompt": f"Prompt {i}", "responses": [f"yes {i}", f"no {i}"]} for i in range(7)]
    report = import_file(parquet_of(rows, tmp_path / "g.parquet"), project=project, fmt="generic")
    assert (report.total_lines, report.comparisons_created) == (7, 7)


@pytest.mark.django_db
def test_a_truncated_gzip_is_reported_not_crashed(project, tmp_path):
    whole = gzipped(fixture("generic_good.jsonl"), tmp_path).read_bytes()
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(whole[: len(whole) - 12])
    with pytest.raises(ImportFailed) as failed:
        import_file(cut, project=project, fmt="generic")
    assert failed.value.report.bad_lines == 1
    assert "truncated or corrupt" in failed.value.report.errors[0].message


@pytest.mark.django_db(transaction=True)
def test_batches_that_reuse_stored_prompts_and_responses(project, tmp_path, monkeypatch):
    """Several small batches (the PostgreSQL path draws a batch's ids in one round trip and looks up only
    what may be stored): a later batch and a later file name prompts and responses already stored, add new
    responses to stored prompts, repeat pairs the other way round. Every row is made once and every
    comparison points at the responses of its own prompt."""
    import orjson

    import curation.importers as importers

    monkeypatch.setattr(importers, "BATCH_LINES", 3)

    def write(name, lines):
        path = tmp_path / name
        path.write_bytes(b"\n".join(orjson.dumps(line) for line in lines))
        return path

    first = write(
        "first.jsonl",
        [{"prompt": f"P{i}", "responses": [f"P{i} r0", f"P{i} r1"]} for i in range(7)],
    )
    report = import_file(first, project=project, fmt="generic")
    assert (report.items_created, report.responses_created, report.comparisons_created) == (7, 14, 7)
    second = write(
        "second.jsonl",
        [
            {"prompt": "P1", "responses": ["P1 r1", "P1 r0"]},  # stored, other order
            {"prompt": "P2", "responses": ["P2 r0", "P2 r2"]},  # stored prompt, one new response
            {"prompt": "P9", "responses": ["P9 r0", "P9 r1"]},  # new
            {"prompt": "P9", "responses": ["P9 r1", "P9 r0"]},  # same batch, other order
            {"prompt": "P2", "responses": ["P2 r2", "P2 r1", "P2 r0"]},  # next batch: one new pair
            {"prompt": "P9", "responses": ["P9 r0", "P9 r2"]},  # next batch: new response of a new prompt
        ],
    )
    report = import_file(second, project=project, fmt="generic")
    assert (report.items_created, report.responses_created, report.comparisons_created) == (1, 4, 4)
    assert report.duplicates == 4  # 8 pairs named, 4 of them stored before or earlier in the file
    assert counts(project)["items"] == 8 and counts(project)["responses"] == 18
    assert counts(project)["comparisons"] == 11
    for c in Comparison.objects.filter(project=project).select_related("item", "response_a", "response_b"):
        prompt = c.item.prompt[0]["content"]
        assert c.response_a.item_id == c.response_b.item_id == c.item_id
        assert c.response_a.text.startswith(prompt + " ") and c.response_b.text.startswith(prompt + " ")
    again = import_file(second, project=project, fmt="generic")
    assert (again.items_created, again.responses_created, again.comparisons_created) == (0, 0, 0)


@pytest.mark.django_db
def test_a_nul_character_in_a_rubric_is_a_bad_line(project, tmp_path):
    """The item's criteria are stored as JSON (jsonb on PostgreSQL, which cannot hold U+0000): refused by line
    and field, not left to fail the whole import in the database."""
    import orjson

    path = tmp_path / "nul.jsonl"
    lines = [
        {"prompt": "Fine", "responses": ["a", "b"], "rubric": [{"text": "Is it kind?"}]},
        {"prompt": "Bad", "responses": ["a", "b"], "rubric": [{"text": "Is it\u0000 kind?"}]},
    ]
    path.write_bytes(b"\n".join(orjson.dumps(line) for line in lines))
    with pytest.raises(ImportFailed) as failed:
        import_file(path, project=project, fmt="generic")
    assert error_lines(failed.value.report) == [(2, "rubric")]
    assert counts(project)["items"] == 0
    report = import_file(path, project=project, fmt="generic", skip_invalid=True)
    assert report.comparisons_created == 1 and error_lines(report) == [(2, "rubric")]


@pytest.mark.django_db
def test_each_batch_is_written_then_reported_as_progress(project, tmp_path, monkeypatch):
    """Lines are written a batch (BATCH_LINES) at a time, each batch followed by a progress step that already
    sees its rows. 3,500 lines in batches of 1,000: steps at 1,000, 2,000, 3,000 and 3,500 rows, then the
    final one."""
    import orjson

    import curation.importers as importers

    monkeypatch.setattr(importers, "BATCH_LINES", 1_000)
    path = tmp_path / "batches.jsonl"
    path.write_bytes(
        b"\n".join(orjson.dumps({"prompt": f"P{i}", "responses": [f"a{i}", f"b{i}"]}) for i in range(3_500))
    )
    steps: list[tuple[float, int]] = []
    report = import_file(
        path,
        project=project,
        fmt="generic",
        progress=lambda fraction: steps.append(
            (fraction, Comparison.objects.filter(project=project).count())
        ),
    )
    assert report.comparisons_created == 3_500
    # Inside the import's transaction, each step sees the rows written so far.
    assert [written for _, written in steps] == [1_000, 2_000, 3_000, 3_500, 3_500]
    assert [fraction for fraction, _ in steps] == sorted(fraction for fraction, _ in steps)
    assert steps[-1][0] == 1.0


def _import_peak(project, path):
    """(the peak of Python's traced allocations while `path` is imported, in bytes; the report)"""
    import tracemalloc

    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        report = import_file(path, project=project, fmt="generic")
        return tracemalloc.get_traced_memory()[1], report
    finally:
        tracemalloc.stop()


@pytest.mark.django_db
def test_memory_of_an_import_is_flat_in_the_size_of_the_file(project, tmp_path, monkeypatch):
    """Batches are written and dropped: a file four times as long peaks at about the same memory (what a
    batch holds), not four times as much."""
    import orjson

    import curation.importers as importers
    from projects.models import Project

    monkeypatch.setattr(importers, "BATCH_LINES", 250)

    def write(name: str, n: int):
        path = tmp_path / name
        path.write_bytes(
            b"\n".join(
                orjson.dumps(
                    {"prompt": f"{name} {i} " + "x" * 400, "responses": [f"a{i} " * 50, f"b{i} " * 50]}
                )
                for i in range(n)
            )
        )
        return path

    small_peak, small = _import_peak(project, write("small", 1_000))
    other = Project.objects.create(name="Other", slug="other-memory")
    large_peak, large = _import_peak(other, write("large", 4_000))
    assert (small.comparisons_created, large.comparisons_created) == (1_000, 4_000)
    assert large_peak < 1.5 * small_peak, (small_peak, large_peak)
