"""`raw` carries every vote of a snapshot's comparisons, contested or not, and their gold answers, and round-trips
through import; `trl` margins survive import and re-export; every Parquet export loads in `datasets` and pandas.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from annotate.models import Gold, JudgmentRevision
from curation import importers
from curation.exporters import export_snapshot
from curation.importers import ImportFailed
from curation.models import SourceMargin
from curation.snapshots import create_snapshot
from projects.models import Project
from rubrics.models import CriterionAnswer, Rubric, RubricVersion
from tests.factories import add_judgment, crowd_annotator, make_comparison

pytestmark = pytest.mark.django_db
T0 = "2026-03-04T05:06:07+00:00"


def _vote(prompt, a, b, annotator, preference, revision=1, **extra):
    return {
        "prompt": prompt,
        "response_a": a,
        "response_b": b,
        "annotator": annotator,
        "preference": preference,
        "revision": revision,
        "created_at": T0,
        **extra,
    }


# Agreed (with a revision), split (no consensus), tied, below the minimum agreement (2 against 1), gold with
# split votes, and one named in the other order (a gold answer relative to that order).
RAW_ROWS = [
    _vote("agreed", "a1", "b1", "ann", -2),
    _vote("agreed", "a1", "b1", "ann", -3, revision=2, justification="sure now"),
    _vote("agreed", "a1", "b1", "bob", -1),
    _vote("split", "a2", "b2", "ann", 2),
    _vote("split", "a2", "b2", "bob", -2),
    _vote("tied", "a3", "b3", "ann", 0),
    _vote("tied", "a3", "b3", "cy", 0),
    _vote("two to one", "a4", "b4", "ann", 1),
    _vote("two to one", "a4", "b4", "bob", 1),
    _vote("two to one", "a4", "b4", "cy", -1),
    _vote(
        "gold", "a5", "b5", "ann", 1, gold={"choice": "a", "explanation": "A is right", "origin": "manual"}
    ),
    _vote("gold", "a5", "b5", "bob", -1),
    _vote("flipped gold", "b6", "a6", "cy", 3, gold={"choice": "a", "a_safe": True, "b_safe": False}),
]


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _judgments(project: Project) -> Counter:
    """The multiset of judgment revisions of `project`: prompt, responses, annotator, number and answers."""
    rows = JudgmentRevision.objects.filter(judgment__project=project).values_list(
        "judgment__comparison__item__prompt",
        "judgment__comparison__response_a__text",
        "judgment__comparison__response_b__text",
        "judgment__annotator__name",
        "number",
        "preference",
        "choice",
        "justification",
        "created_at",
    )
    return Counter(
        (json.dumps(prompt), frozenset((a, b)), name, number, abs(pref or 0), justification, created_at)
        for prompt, a, b, name, number, pref, choice, justification, created_at in rows
    )


def _golds(project: Project) -> dict[tuple, tuple]:
    return {
        (g.comparison.response_a.text, g.comparison.response_b.text): (g.choice, g.a_safe, g.b_safe, g.origin)
        for g in Gold.objects.filter(comparison__project=project).select_related(
            "comparison__response_a", "comparison__response_b"
        )
    }


def _project(slug: str) -> Project:
    return Project.objects.create(name=slug, slug=slug)


@pytest.mark.parametrize("parquet", [False, True], ids=["jsonl", "parquet"])
def test_raw_round_trip_keeps_contested_votes_and_gold(tmp_path, parquet):
    first = _project("first")
    importers.import_file(_write_jsonl(tmp_path / "in.jsonl", RAW_ROWS), project=first, fmt="raw")
    assert sum(_judgments(first).values()) == len(RAW_ROWS)
    # The gold answer of the reversed line is stored relative to the comparison's order (its first arrival).
    assert _golds(first) == {
        ("a5", "b5"): ("a", None, None, "manual"),
        ("b6", "a6"): ("a", True, False, "manual"),
    }
    # Consensus options that leave most comparisons without a pair, and every imported vote out of them.
    snap = create_snapshot(project=first, exclude="gold", min_agreement=0.9)
    assert snap.pair_count == 1 and snap.counts["contested"] == 5
    name = "raw.parquet" if parquet else "raw.jsonl"
    out = export_snapshot(snap, tmp_path / name, fmt="raw", with_names=True, parquet=parquet)
    assert out.rows == len(RAW_ROWS)
    assert out.stats["contested_comparisons"] == 5
    second = _project("second")
    importers.import_file(out.path, project=second, fmt="raw")
    assert _judgments(second) == _judgments(first)
    assert _golds(second) == _golds(first)
    # And once more: what the second project exports imports into a third with the same judgments.
    again = export_snapshot(
        create_snapshot(project=second), tmp_path / f"again-{name}", fmt="raw", with_names=True
    )
    third = _project("third")
    importers.import_file(again.path, project=third, fmt="raw")
    assert _judgments(third) == _judgments(first)


def test_raw_rows_say_the_snapshots_consensus_and_gold(tmp_path):
    project = _project("p")
    importers.import_file(_write_jsonl(tmp_path / "in.jsonl", RAW_ROWS), project=project, fmt="raw")
    snap = create_snapshot(project=project, min_agreement=0.9)
    rows = [json.loads(line) for line in export_snapshot(snap, tmp_path / "o.jsonl", fmt="raw").path.open()]
    by_prompt = {r["prompt"][0]["content"]: (r["consensus"], r["consensus_status"], r["gold"]) for r in rows}
    assert by_prompt["agreed"] == ("a", "ok", None)
    assert by_prompt["split"] == (None, "no_consensus", None)
    assert by_prompt["two to one"] == (None, "below_min_agreement", None)
    assert by_prompt["gold"][:2] == ("a", "ok")  # the gold answer settles it
    assert by_prompt["gold"][2] == {
        "choice": "a",
        "helpfulness": None,
        "harmlessness": None,
        "a_safe": None,
        "b_safe": None,
        "explanation": "A is right",
        "origin": "manual",
    }


def test_a_bad_gold_answer_is_refused_with_its_line_and_field(tmp_path):
    rows = [_vote("p", "a", "b", "ann", 1, gold={"choice": "c"})]
    with pytest.raises(ImportFailed) as failed:
        importers.import_file(_write_jsonl(tmp_path / "bad.jsonl", rows), project=_project("p"), fmt="raw")
    assert [(e.line, e.field) for e in failed.value.report.errors] == [(1, "gold.choice")]
    assert not Gold.objects.exists()


TRL_ROWS = [
    {"prompt": "one", "chosen": "good 1", "rejected": "bad 1", "margin": 0.25},
    {"prompt": "two", "chosen": "good 2", "rejected": "bad 2", "margin": 2.5},
    {"prompt": "three", "chosen": "good 3", "rejected": "bad 3"},
]


def _trl_margins(path: Path) -> dict[str, float]:
    rows = pq.read_table(path).to_pylist() if path.suffix == ".parquet" else map(json.loads, path.open())
    return {
        r["prompt"] if isinstance(r["prompt"], str) else r["prompt"][0]["content"]: r["margin"] for r in rows
    }


@pytest.mark.parametrize("style", ["conversational", "text"])
def test_trl_margins_survive_import_and_re_export(tmp_path, style):
    project = _project("p")
    importers.import_file(_write_jsonl(tmp_path / "in.jsonl", TRL_ROWS), project=project, fmt="trl")
    assert sorted(SourceMargin.objects.values_list("margin", flat=True)) == [0.25, 2.5]
    snap = create_snapshot(project=project)
    out = export_snapshot(snap, tmp_path / "out.jsonl", fmt="trl", margin=True, style=style).path
    human = snap.pairs.get(comparison__item__prompt__0__content="three").margin
    assert _trl_margins(out) == {"one": 0.25, "two": 2.5, "three": human}
    parquet = export_snapshot(
        snap, tmp_path / "out.parquet", fmt="trl", margin=True, style=style, parquet=True
    )
    assert _trl_margins(parquet.path) == _trl_margins(out)
    # Re-imported elsewhere, the exported margins come back out again.
    other = _project("other")
    importers.import_file(out, project=other, fmt="trl")
    again = export_snapshot(create_snapshot(project=other), tmp_path / "again.jsonl", fmt="trl", margin=True)
    assert _trl_margins(again.path) == _trl_margins(out)


def test_a_non_finite_trl_margin_is_refused(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "p", "chosen": "a", "rejected": "b", "margin": NaN}\n')
    with pytest.raises(ImportFailed) as failed:
        importers.import_file(path, project=_project("p"), fmt="trl")
    assert failed.value.report.errors[0].line == 1


@pytest.fixture
def everything(project, researcher):
    """Votes with harm categories and rubric answers, a gold comparison, a contested one."""
    project.harm_categories = ["violence", "privacy"]
    project.save()
    x, y = crowd_annotator(project, "x"), crowd_annotator(project, "y")
    c1 = make_comparison(project, "Say hi", "Hi!", "Go away.", model_a="m1")
    c2 = make_comparison(project, "split", "s1", "s2")
    j = add_judgment(
        c1, x, preference=-2, a_safe=True, b_safe=False, b_harm_categories=["violence"], b_severity="severe"
    )
    add_judgment(c1, y, preference=-1, a_safe=True, b_safe=True)
    add_judgment(c2, x, preference=1)
    add_judgment(c2, y, preference=-1)
    Gold.objects.create(comparison=c1, choice="a", explanation="kind")
    rubric = Rubric.objects.create(name="R")
    version = RubricVersion.objects.create(rubric=rubric, number=1)
    CriterionAnswer.objects.create(
        revision=j.revisions.get(), side="a", version=version, criterion_key="polite", answer="yes"
    )
    return project


EXPORTS = [
    ("trl", {}),
    ("trl", {"margin": True}),
    ("trl", {"style": "text", "margin": True}),
    ("hh", {}),
    ("safe-rlhf", {}),
    ("raw", {"with_names": True}),
]


@pytest.mark.parametrize("harm", [True, False], ids=["harm-categories", "no-harm-categories"])
@pytest.mark.parametrize(("fmt", "options"), EXPORTS, ids=[f"{f}-{'-'.join(o)}" for f, o in EXPORTS])
def test_every_parquet_export_loads_in_datasets_and_pandas(everything, tmp_path, fmt, options, harm):
    datasets = pytest.importorskip("datasets")
    if not harm:
        everything.harm_categories = []
        everything.save()
    snap = create_snapshot(project=everything)
    jsonl = export_snapshot(snap, tmp_path / f"{fmt}.jsonl", fmt=fmt, **options).path
    parquet = export_snapshot(snap, tmp_path / f"{fmt}.parquet", fmt=fmt, parquet=True, **options).path
    loaded = datasets.load_dataset(
        "parquet", data_files=str(parquet), split="train", cache_dir=str(tmp_path / "hf-cache")
    ).to_list()
    frame = pd.read_parquet(parquet)
    lines = [json.loads(line) for line in jsonl.open()]
    assert len(loaded) == len(frame) == len(lines) > 0
    assert list(frame.columns) == list(lines[0])
    for row, line in zip(loaded, lines, strict=True):
        if fmt == "raw" and line["rubric"] is not None:  # Parquet: lists of {criterion, answer}
            line["rubric"] = {
                "version": line["rubric"]["version"],
                **{s: [{"criterion": k, "answer": v} for k, v in line["rubric"][s].items()] for s in "ab"},
            }
        if fmt == "safe-rlhf" and not harm:  # Parquet cannot hold a struct without fields: null
            assert line["response_0_harm_category"] == line["response_1_harm_category"] == {}
            line["response_0_harm_category"] = line["response_1_harm_category"] = None
        assert row == line
    if fmt == "raw":
        assert any(r["rubric"] for r in loaded) and any(r["gold"] for r in loaded)
        assert {r["consensus_status"] for r in loaded} == {"ok", "no_consensus"}
    # The Parquet raw export imports back (rubric answers in their list form, gold answers).
    if fmt == "raw":
        back = Project.objects.create(name="back", slug="back", harm_categories=everything.harm_categories)
        importers.import_file(parquet, project=back, fmt="raw", add_harm_categories=True)
        assert Gold.objects.filter(comparison__project__slug="back").count() == 1


def test_created_at_in_the_parquet_raw_export_is_the_jsonl_string(everything, tmp_path):
    moment = dt.datetime(2026, 5, 6, 7, 8, 9, 123456, tzinfo=dt.UTC)
    JudgmentRevision.objects.update(created_at=moment)
    snap = create_snapshot(project=everything)
    parquet = export_snapshot(snap, tmp_path / "raw.parquet", fmt="raw", parquet=True).path
    assert {r["created_at"] for r in pq.read_table(parquet).to_pylist()} == {moment.isoformat()}
