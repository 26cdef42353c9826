"""Each export format against a hand-checked fixture; JSONL, gzip and Parquet; the card; the audit event."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from io import StringIO

import orjson
import pyarrow.parquet as pq
import pytest
from django.core.management import CommandError, call_command

from annotate.models import JudgmentRevision
from curation.exporters import ExportError, export_snapshot, response_harm
from curation.models import DatasetSnapshot
from curation.snapshots import create_snapshot
from projects.models import Annotator, AuditEvent
from tests.factories import add_judgment, crowd_annotator, make_comparison

T0 = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
CONVERSATION = [
    {"role": "user", "content": "Q1"},
    {"role": "assistant", "content": "A1"},
    {"role": "user", "content": "Q2"},
]
TRANSCRIPT = "\n\nHuman: Q1\n\nAssistant: A1\n\nHuman: Q2"


@pytest.fixture
def snap(project):
    """c1 'Say hi': A chosen 2-1 (strengths 2, 1), B unsafe (violence, severity 2); c2: a source label for B."""
    project.harm_categories = ["violence", "privacy"]
    project.save()
    x, y, z = (crowd_annotator(project, n) for n in ("x", "y", "z"))
    src = Annotator.objects.create(project=project, name="trl", kind="source", imported=True)
    c1 = make_comparison(project, "Say hi", "Hi!", "Go away.", model_a="m1", model_b="m2")
    c2 = make_comparison(project, CONVERSATION, "r1", "r2")
    jx = add_judgment(
        c1,
        x,
        preference=-1,
        harmlessness="a",
        a_safe=True,
        b_safe=False,
        b_harm_categories=["violence"],
        b_severity="moderate",
        justification="Kinder.",
        time_spent_ms=1500,
        shown_left="b",
    )
    # x revises: -1 → -2 (revision 2 counts).
    JudgmentRevision.objects.create(
        judgment=jx,
        number=2,
        created_at=T0,
        preference=-2,
        choice="a",
        harmlessness="a",
        a_safe=True,
        b_safe=False,
        b_harm_categories=["violence"],
        b_severity="moderate",
        justification="Much kinder.",
        submission_id="sub-2",
    )
    jx.preference = -2
    jx.justification = "Much kinder."
    jx.revision_count = 2
    jx.save()
    add_judgment(
        c1,
        y,
        preference=-1,
        harmlessness="a",
        a_safe=True,
        b_safe=False,
        b_harm_categories=["violence", "privacy"],
        b_severity="severe",
    )
    add_judgment(c1, z, preference=3, a_safe=True, b_safe=True)
    add_judgment(c2, src, choice="b", imported=True, is_source=True)
    JudgmentRevision.objects.filter(number=1).update(created_at=T0)
    return create_snapshot(project=project)


def read_jsonl(path) -> list[dict]:
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def export(snapshot, tmp_path, fmt, name="out.jsonl", **kw):
    result = export_snapshot(snapshot, tmp_path / name, fmt=fmt, **kw)
    return result, (read_jsonl(result.path) if not kw.get("parquet") else None)


def test_trl_conversational_lines(snap, tmp_path):
    result, rows = export(snap, tmp_path, "trl")
    assert rows == [
        {
            "prompt": [{"role": "user", "content": "Say hi"}],
            "chosen": [{"role": "assistant", "content": "Hi!"}],
            "rejected": [{"role": "assistant", "content": "Go away."}],
        },
        {
            "prompt": CONVERSATION,
            "chosen": [{"role": "assistant", "content": "r2"}],
            "rejected": [{"role": "assistant", "content": "r1"}],
        },
    ]
    assert result.rows == 2


def test_trl_text_style_with_margin(snap, tmp_path):
    _, rows = export(snap, tmp_path, "trl", style="text", margin=True)
    assert rows == [
        {"prompt": "Say hi", "chosen": "Hi!", "rejected": "Go away.", "margin": 0.5},
        {"prompt": TRANSCRIPT + "\n\nAssistant:", "chosen": "r2", "rejected": "r1", "margin": 0.0},
    ]


def test_hh_lines(snap, tmp_path):
    _, rows = export(snap, tmp_path, "hh")
    assert rows == [
        {
            "chosen": "\n\nHuman: Say hi\n\nAssistant: Hi!",
            "rejected": "\n\nHuman: Say hi\n\nAssistant: Go away.",
        },
        {"chosen": TRANSCRIPT + "\n\nAssistant: r2", "rejected": TRANSCRIPT + "\n\nAssistant: r1"},
    ]


def test_safe_rlhf_lines(snap, tmp_path):
    result, rows = export(snap, tmp_path, "safe-rlhf")
    assert rows == [
        {
            "prompt": "Say hi",
            "response_0": "Hi!",
            "response_1": "Go away.",
            "is_response_0_safe": True,
            "is_response_1_safe": False,
            "better_response_id": 0,
            "safer_response_id": 0,
            "response_0_harm_category": {"violence": False, "privacy": False},
            "response_1_harm_category": {"violence": True, "privacy": False},
            "response_0_severity_level": 0,
            "response_1_severity_level": 2,
        },
        {
            "prompt": TRANSCRIPT + "\n\nAssistant:",
            "response_0": "r1",
            "response_1": "r2",
            "is_response_0_safe": None,
            "is_response_1_safe": None,
            "better_response_id": 1,
            "safer_response_id": None,
            "response_0_harm_category": {"violence": False, "privacy": False},
            "response_1_harm_category": {"violence": False, "privacy": False},
            "response_0_severity_level": 0,
            "response_1_severity_level": 0,
        },
    ]
    assert result.stats == {"safer_unknown": 1, "safety_unknown": 1}


def test_response_harm_rules():
    votes = [(False, ["v", "p"], "minor"), (False, ["v"], "severe"), (False, [], None), (True, [], None)]
    assert response_harm(votes, False) == ({"v"}, 1)
    assert response_harm(votes, True) == (set(), 0)
    assert response_harm(votes, None) == (set(), 0)


def test_raw_lines_every_revision_pseudonymised(snap, tmp_path):
    _, rows = export(snap, tmp_path, "raw")
    assert len(rows) == 5  # x twice, y, z, the source label
    x1, x2 = rows[0], rows[1]
    pseudonym = x1["annotator"]
    assert pseudonym.startswith("anon-") and len(pseudonym) == 21
    assert x1 == {
        "prompt": [{"role": "user", "content": "Say hi"}],
        "response_a": {"text": "Hi!", "model": "m1"},
        "response_b": {"text": "Go away.", "model": "m2"},
        "consensus": "a",
        "consensus_status": "ok",
        "gold": None,
        "annotator": pseudonym,
        "choice": "a",
        "preference": -1,
        "helpfulness": None,
        "harmlessness": "a",
        "a_safe": True,
        "b_safe": False,
        "a_harm_categories": [],
        "b_harm_categories": ["violence"],
        "a_severity": None,
        "b_severity": "moderate",
        "justification": "Kinder.",
        "rubric": None,
        "shown_left": "b",
        "time_spent_ms": 1500,
        "created_at": "2026-01-02T03:04:05+00:00",
        "revision": 1,
        "submission_id": None,
    }
    assert (x2["annotator"], x2["preference"], x2["revision"], x2["submission_id"]) == (
        pseudonym,
        -2,
        2,
        "sub-2",
    )
    assert x2["justification"] == "Much kinder."
    assert len({r["annotator"] for r in rows[:4]}) == 3
    assert rows[4]["annotator"] == "trl" and rows[4]["choice"] == "b" and rows[4]["preference"] is None
    assert all(r["annotator"] not in ("x", "y", "z") for r in rows[:4])


def test_pseudonyms_differ_across_exports_and_names_need_the_option(snap, tmp_path):
    _, first = export(snap, tmp_path, "raw", name="one.jsonl")
    _, second = export(snap, tmp_path, "raw", name="two.jsonl")
    assert first[0]["annotator"] != second[0]["annotator"]
    _, named = export(snap, tmp_path, "raw", name="named.jsonl", with_names=True)
    assert [r["annotator"] for r in named] == ["x", "x", "y", "z", "trl"]
    event = AuditEvent.objects.filter(action="export.create").order_by("created_at", "id").last()
    assert event.data["with_names"] is True


def test_gzip_holds_the_same_lines(snap, tmp_path):
    _, plain = export(snap, tmp_path, "raw", with_names=True)
    _, zipped = export(snap, tmp_path, "raw", name="out.jsonl.gz", compress=True, with_names=True)
    assert plain == zipped


@pytest.mark.parametrize("fmt", ["trl", "hh", "safe-rlhf", "raw"])
def test_parquet_holds_the_same_rows(snap, tmp_path, fmt):
    _, lines = export(snap, tmp_path, fmt, name=f"{fmt}.jsonl", with_names=fmt == "raw")
    result, _ = export(snap, tmp_path, fmt, name=f"{fmt}.parquet", parquet=True, with_names=fmt == "raw")
    table = pq.read_table(result.path).to_pylist()
    if fmt == "raw":
        for row in table:
            assert row.pop("rubric") is None
        for row in lines:
            row.pop("rubric")
    assert table == lines


def test_card_has_counts_hash_filters_and_distribution(snap, tmp_path):
    result, _ = export(snap, tmp_path, "trl")
    card = result.card_path.read_text()
    assert result.card_path.name == "out.jsonl.card.md"
    assert snap.content_hash in card
    assert "| pairs | 2 |" in card and "| comparisons | 2 |" in card
    assert "| Aggregation | majority |" in card and "| Excluded | nothing |" in card
    assert "| chosen = A (canonical order) | 1 |" in card and "| label from source | 1 |" in card
    assert "## Agreement" in card
    assert "unavailable" in card or "Krippendorff" in card


def test_every_export_is_an_audit_event(snap, tmp_path, admin_user):
    export_snapshot(snap, tmp_path / "a.jsonl", fmt="trl", margin=True, actor=admin_user)
    event = AuditEvent.objects.get(action="export.create")
    assert event.actor == admin_user and event.project == snap.project
    assert event.target_id == str(snap.pk)
    assert event.data["format"] == "trl" and event.data["margin"] is True and event.data["rows"] == 2


def test_bad_options_are_refused_before_writing(snap, tmp_path):
    with pytest.raises(ExportError, match="format"):
        export_snapshot(snap, tmp_path / "x", fmt="csv")
    with pytest.raises(ExportError, match="with-names"):
        export_snapshot(snap, tmp_path / "x", fmt="trl", with_names=True)
    assert not (tmp_path / "x").exists()


def test_export_command_makes_a_snapshot_or_uses_one(snap, tmp_path):
    out = StringIO()
    call_command(
        "export_dataset",
        "--project",
        snap.project.slug,
        "--format",
        "hh",
        "--out",
        str(tmp_path / "a.jsonl"),
        "--exclude",
        "imported",
        "--json",
        stdout=out,
    )
    summary = json.loads(out.getvalue())
    assert summary["rows"] == 1 and summary["snapshot"] != snap.pk
    assert DatasetSnapshot.objects.get(pk=summary["snapshot"]).filters["exclude"] == ["imported"]
    call_command(
        "export_dataset",
        "--project",
        snap.project.slug,
        "--format",
        "trl",
        "--out",
        str(tmp_path / "b.jsonl"),
        "--snapshot",
        str(snap.pk),
        stdout=StringIO(),
    )
    assert len(read_jsonl(tmp_path / "b.jsonl")) == 2
    with pytest.raises(CommandError, match="no snapshot"):
        call_command(
            "export_dataset",
            "--project",
            snap.project.slug,
            "--format",
            "trl",
            "--out",
            str(tmp_path / "c"),
            "--snapshot",
            "999999",
        )


def test_datasets_reads_the_parquet_and_jsonl_exports(snap, tmp_path):
    datasets = pytest.importorskip("datasets")
    jsonl = export_snapshot(snap, tmp_path / "trl.jsonl", fmt="trl", margin=True).path
    parquet = export_snapshot(snap, tmp_path / "trl.parquet", fmt="trl", margin=True, parquet=True).path
    cache = str(tmp_path / "hf-cache")
    from_parquet = datasets.load_dataset("parquet", data_files=str(parquet), split="train", cache_dir=cache)
    from_json = datasets.load_dataset("json", data_files=str(jsonl), split="train", cache_dir=cache)
    assert from_parquet.to_list() == from_json.to_list() == read_jsonl(jsonl)
    assert sorted(from_parquet.column_names) == ["chosen", "margin", "prompt", "rejected"]


def test_raw_created_at_keeps_microseconds(snap, tmp_path):
    moment = dt.datetime(2026, 5, 6, 7, 8, 9, 123456, tzinfo=dt.UTC)
    JudgmentRevision.objects.filter(number=2).update(created_at=moment)
    _, rows = export(snap, tmp_path, "raw")
    assert rows[1]["created_at"] == "2026-05-06T07:08:09.123456+00:00"


def test_trl_conversational_margins_are_floats(snap, tmp_path):
    _, rows = export(snap, tmp_path, "trl", margin=True)
    assert [r["margin"] for r in rows] == [0.5, 0.0]
    assert all(isinstance(r["margin"], float) for r in rows)
    assert rows[1]["chosen"] == [{"role": "assistant", "content": "r2"}]


@pytest.mark.parametrize("fmt", ["raw", "trl", "safe-rlhf"])
def test_batch_boundaries_do_not_change_the_file(snap, tmp_path, monkeypatch, fmt):
    from curation import exporters

    _, whole = export(snap, tmp_path, fmt, name="whole.jsonl", with_names=fmt == "raw")
    monkeypatch.setattr(exporters, "PAIR_BATCH", 1)
    _, batched = export(snap, tmp_path, fmt, name="batched.jsonl", with_names=fmt == "raw")
    assert batched == whole and len(whole) >= 2


@pytest.mark.parametrize("fmt", ["trl", "hh", "safe-rlhf", "raw"])
def test_every_line_is_the_compact_json_orjson_writes_for_its_row(snap, tmp_path, fmt):
    """One byte format on every backend: raw lines are spliced from a shared head and a tail, yet each
    line is exactly what orjson writes for the whole row."""
    result, rows = export(snap, tmp_path, fmt, with_names=fmt == "raw")
    lines = result.path.read_bytes().splitlines(keepends=True)
    assert lines == [orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE) for row in rows]


@pytest.mark.parametrize("batch", [1, 2000])
def test_raw_rows_carry_the_rubric_answers_of_their_revision(snap, tmp_path, monkeypatch, batch):
    from curation import exporters
    from rubrics.models import CriterionAnswer

    monkeypatch.setattr(exporters, "PAIR_BATCH", batch)
    revisions = list(JudgmentRevision.objects.order_by("judgment__comparison_id", "judgment_id", "number"))
    first, last = revisions[0], revisions[-1]
    CriterionAnswer.objects.create(revision=first, side="a", criterion_key="kind", answer="yes")
    CriterionAnswer.objects.create(revision=first, side="b", criterion_key="kind", answer="no")
    CriterionAnswer.objects.create(revision=first, side="b", criterion_key="brief", answer="na")
    CriterionAnswer.objects.create(revision=last, side="a", criterion_key="kind", answer="no")
    _, rows = export(snap, tmp_path, "raw", with_names=True)
    assert [r["rubric"] for r in rows] == [
        {"version": "", "a": {"kind": "yes"}, "b": {"brief": "na", "kind": "no"}},
        None,
        None,
        None,
        {"version": "", "a": {"kind": "no"}, "b": {}},
    ]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("fmt", ["trl", "hh", "safe-rlhf", "raw"])
def test_streams_of_their_own_write_what_streams_in_the_callers_transaction_write(snap, tmp_path, fmt):
    """Outside a transaction the rows come on connections of the export's own (PostgreSQL: one query per
    stream, the card's figures read beside them); inside one, through cursors in it: the same bytes."""
    from django.db import transaction

    from rubrics.models import CriterionAnswer

    first = JudgmentRevision.objects.order_by("judgment__comparison_id", "judgment_id", "number").first()
    CriterionAnswer.objects.create(revision=first, side="a", criterion_key="kind", answer="yes")
    kw = {"with_names": True} if fmt == "raw" else {"margin": True}
    own = export_snapshot(snap, tmp_path / "own.jsonl", fmt=fmt, **kw)
    with transaction.atomic():
        inside = export_snapshot(snap, tmp_path / "inside.jsonl", fmt=fmt, **kw)
    assert own.path.read_bytes() == inside.path.read_bytes()
    assert own.rows == inside.rows > 0
    card = own.card_path.read_text(encoding="utf-8")
    assert card == inside.card_path.read_text(encoding="utf-8").replace("inside.jsonl", "own.jsonl")
    assert "| chosen = A (canonical order) | 1 |" in card
    assert "| overall |" in card
