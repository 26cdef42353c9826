"""evaluate_reward_model: scores trl, hh, safe-rlhf and raw files, writes per-pair scores, refuses generic."""

from __future__ import annotations

import json
import random
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from curation.canonical import render_hh
from tests.rewardtrain.apphelpers import finished_version, toy_texts


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _evaluate(*args: str) -> dict:
    out = StringIO()
    call_command("evaluate_reward_model", *args, "--json", stdout=out)
    return json.loads(out.getvalue())


def _toy(n: int, seed: int, unsafe: bool = False):
    rng = random.Random(seed)
    return [toy_texts(1000 + i, rng, unsafe=unsafe) for i in range(n)]


@pytest.mark.django_db
def test_trl_file_reports_accuracy_and_margins_and_writes_one_line_per_pair(project, tmp_path):
    version = finished_version(project, "bt")
    rows = []
    for i, (prompt, good, bad) in enumerate(_toy(12, 1)):
        if i % 2:
            rows.append({"prompt": prompt, "chosen": good, "rejected": bad})
        else:
            rows.append(
                {
                    "prompt": [{"role": "user", "content": prompt}],
                    "chosen": [{"role": "assistant", "content": good}],
                    "rejected": [{"role": "assistant", "content": bad}],
                }
            )
    path = _write(tmp_path / "pairs.jsonl", rows)
    out = tmp_path / "scores.jsonl"
    report = _evaluate("--model", str(version.pk), "--file", str(path), "--format", "trl", "--out", str(out))
    assert report["pairs"] == 12
    assert report["accuracy"] >= 0.9
    assert report["margin"]["mean"] > 0 and report["margin"]["p10"] <= report["margin"]["median"]
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 12
    assert all({"reward_chosen", "reward_rejected"} <= set(line) for line in lines)
    first = lines[0]
    assert first["margin"] == pytest.approx(first["reward_chosen"] - first["reward_rejected"])


@pytest.mark.django_db
def test_a_file_never_counts_a_pair_the_model_was_trained_on_and_says_what_it_measured(project, tmp_path):
    version = finished_version(project, "bt")
    trained = version.run.snapshot.pairs.select_related(
        "comparison__item", "comparison__response_a", "comparison__response_b"
    )[0].comparison
    rows = [{"prompt": p, "chosen": good, "rejected": bad} for p, good, bad in _toy(5, 4)]
    # The trained pair, named in the other order: the same comparison.
    rows.append(
        {
            "prompt": trained.item.prompt,
            "chosen": trained.response_b.text,
            "rejected": trained.response_a.text,
        }
    )
    report = _evaluate(
        "--model", str(version.pk), "--file", str(_write(tmp_path / "f.jsonl", rows)), "--format", "trl"
    )
    assert report["pairs"] == 5 and report["skipped"] == {"trained_on": 1}
    assert report["evaluated_on"] == {"kind": "evaluation file", "name": "f.jsonl", "pairs": 5}
    assert 0 <= report["calibration"]["ece_correctness"] <= 1
    assert report["calibration"]["calibration_pairs"] == 5 and "ece_vote_share" not in report["calibration"]


@pytest.mark.django_db
def test_hh_file_is_scored(project, tmp_path):
    version = finished_version(project, "bt")
    rows = []
    for prompt, good, bad in _toy(10, 2):
        messages = [{"role": "user", "content": prompt}]
        rows.append({"chosen": render_hh(messages, good), "rejected": render_hh(messages, bad)})
    path = _write(tmp_path / "hh.jsonl", rows)
    report = _evaluate("--model", str(version.pk), "--file", str(path), "--format", "hh")
    assert report["pairs"] == 10 and report["accuracy"] >= 0.9


@pytest.mark.django_db
def test_raw_votes_are_aggregated_by_strict_majority(project, tmp_path):
    version = finished_version(project, "bt")
    (p1, good1, bad1), (p2, good2, bad2), (p3, good3, bad3) = _toy(3, 3)
    rows = [
        # Pair 1: two of three annotators prefer the helpful response (B); one tie does not count.
        {"prompt": p1, "response_a": bad1, "response_b": good1, "annotator": "x", "choice": "b"},
        {"prompt": p1, "response_a": bad1, "response_b": good1, "annotator": "y", "preference": 2},
        {"prompt": p1, "response_a": bad1, "response_b": good1, "annotator": "z", "choice": "a"},
        {"prompt": p1, "response_a": bad1, "response_b": good1, "annotator": "w", "choice": "tie"},
        # Pair 2: the same pair in the other order, one vote each way for the helpful side.
        {"prompt": p2, "response_a": good2, "response_b": bad2, "annotator": "x", "choice": "a"},
        {"prompt": p2, "response_a": bad2, "response_b": good2, "annotator": "y", "choice": "b"},
        # Pair 3: a split vote has no consensus and is left out.
        {"prompt": p3, "response_a": good3, "response_b": bad3, "annotator": "x", "choice": "a"},
        {"prompt": p3, "response_a": good3, "response_b": bad3, "annotator": "y", "choice": "b"},
    ]
    path = _write(tmp_path / "raw.jsonl", rows)
    out = tmp_path / "scores.jsonl"
    report = _evaluate("--model", str(version.pk), "--file", str(path), "--format", "raw", "--out", str(out))
    assert report["pairs"] == 2
    assert report["skipped"] == {"no_consensus": 1}
    assert report["accuracy"] == 1.0
    assert 0 <= report["calibration"]["ece_vote_share"] <= 1  # a raw file has vote shares
    assert [json.loads(line)["line"] for line in out.read_text().splitlines()] == [1, 5]


@pytest.mark.django_db
def test_cost_model_on_safe_rlhf_reports_safer_accuracy_and_cost_columns(project, tmp_path):
    version = finished_version(project, "cost")
    rows = []
    for i, (prompt, good, bad) in enumerate(_toy(10, 4, unsafe=True)):
        responses = [good, bad] if i % 2 else [bad, good]
        safer = 0 if i % 2 else 1
        rows.append(
            {
                "prompt": prompt,
                "response_0": responses[0],
                "response_1": responses[1],
                "is_response_0_safe": safer == 0,
                "is_response_1_safe": safer == 1,
                "better_response_id": safer,
                "safer_response_id": safer,
            }
        )
    path = _write(tmp_path / "safe.jsonl", rows)
    out = tmp_path / "costs.jsonl"
    report = _evaluate(
        "--model", str(version.pk), "--file", str(path), "--format", "safe-rlhf", "--out", str(out)
    )
    assert report["kind"] == "cost" and report["safer_accuracy"] >= 0.9
    assert report["sign_accuracy"] is not None
    line = json.loads(out.read_text().splitlines()[0])
    assert {"cost_chosen", "cost_rejected"} <= set(line) and "reward_chosen" not in line
    assert line["margin"] == pytest.approx(line["cost_rejected"] - line["cost_chosen"])


@pytest.mark.django_db
def test_generic_files_are_refused_with_a_clear_error(project, tmp_path):
    version = finished_version(project, "bt")
    path = _write(tmp_path / "generic.jsonl", [{"prompt": "Hi", "responses": ["a", "b"]}])
    with pytest.raises(CommandError, match="'generic' files carry no preference label"):
        _evaluate("--model", str(version.pk), "--file", str(path), "--format", "generic")


@pytest.mark.django_db
def test_a_bad_line_is_reported_by_file_line_and_field(project, tmp_path):
    version = finished_version(project, "bt")
    path = tmp_path / "bad.jsonl"
    path.write_text(
        json.dumps({"prompt": "a", "chosen": "b", "rejected": "c"})
        + "\n"
        + json.dumps({"prompt": "a", "chosen": 3, "rejected": "c"})
        + "\n"
    )
    out = tmp_path / "never.jsonl"
    with pytest.raises(CommandError, match=r"bad.jsonl:2: field 'chosen'"):
        _evaluate("--model", str(version.pk), "--file", str(path), "--format", "trl", "--out", str(out))
    assert not out.exists()


@pytest.mark.django_db
def test_files_are_read_and_checked_by_the_importers_readers(project, tmp_path):
    """A gzipped file evaluates as the importer would read it, and a line the importer refuses (an unknown
    field of a raw row) is refused here too, by file, line and field."""
    import gzip

    version = finished_version(project, "bt")
    rows = [{"prompt": p, "chosen": good, "rejected": bad} for p, good, bad in _toy(6, 5)]
    path = tmp_path / "pairs.jsonl.gz"
    path.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode()))
    assert _evaluate("--model", str(version.pk), "--file", str(path), "--format", "trl")["pairs"] == 6
    raw = _write(
        tmp_path / "votes.jsonl",
        [
            {"prompt": "p", "response_a": "x", "response_b": "y", "annotator": "a", "choice": "a"},
            {"prompt": "p", "response_a": "x", "response_b": "y", "annotator": "b", "choice": "a", "mood": 1},
        ],
    )
    with pytest.raises(CommandError, match=r"votes.jsonl:2: field 'mood' unknown field"):
        _evaluate("--model", str(version.pk), "--file", str(raw), "--format", "raw")
