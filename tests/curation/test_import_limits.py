"""Import limits (issue 20): decompressed bytes, bytes a line, characters a prompt and a response, responses a
line, messages a prompt. Each is a setting; each is refused with the line and field named, commits nothing, and
the reader holds a block and one line at most (a gzip bomb, a huge line, a gzip of blank lines).

The hostile files are written here, streamed (a block at a time, never whole in memory), and are small on disk.
"""

from __future__ import annotations

import gzip
import io
import json
import tracemalloc
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from curation.importers import ImportFailed, import_file
from curation.importers.readers import (
    ImportLimitExceeded,
    InvalidRecord,
    ReadLimits,
    RecordReader,
    bounded_lines,
)
from tests.curation.importing import counts, error_lines

pytestmark = pytest.mark.django_db

MiB = 1 << 20
GOOD = {"prompt": "Capital of France?", "responses": ["Paris.", "Lyon."]}


def _gzip(path: Path, *parts: tuple[bytes, int]) -> Path:
    """A gzip of each `(block, times)` written `times` over, one block at a time."""
    with gzip.open(path, "wb", compresslevel=9) as fh:
        for block, times in parts:
            for _ in range(times):
                fh.write(block)
    return path


def _line(obj: dict) -> bytes:
    return json.dumps(obj).encode() + b"\n"


def _refused(project, path: Path, fmt: str = "generic", **kwargs) -> ImportFailed:
    before = counts(project)
    with pytest.raises(ImportFailed) as failed:
        import_file(path, project=project, fmt=fmt, **kwargs)
    assert counts(project) == before
    return failed.value


def test_gzip_bomb_of_one_huge_line_stops_the_import_and_commits_nothing(project, tmp_path, settings):
    settings.ARBITER_IMPORT_MAX_DECOMPRESSED_BYTES = 8 * MiB
    settings.ARBITER_IMPORT_MAX_LINE_BYTES = 1 * MiB
    bomb = _gzip(tmp_path / "bomb.jsonl.gz", (_line(GOOD), 1), (b'{"prompt": "', 1), (b"A" * MiB, 32))
    assert bomb.stat().st_size < 200_000
    before = counts(project)
    with pytest.raises(ImportLimitExceeded) as refused:
        import_file(bomb, project=project, fmt="generic", skip_invalid=True)
    assert "line 2" in str(refused.value) and "ARBITER_IMPORT_MAX_DECOMPRESSED_MB" in str(refused.value)
    assert counts(project) == before  # not even line 1, skip_invalid or not


def test_a_huge_line_is_read_in_bounded_memory_and_named(tmp_path, settings):
    """A 64 MiB line (a gzip of 64 KiB) with the line limit at 1 MiB: reported as line 2, never held whole."""
    bomb = _gzip(
        tmp_path / "line.jsonl.gz", (_line(GOOD), 1), (b'{"prompt": "', 1), (b"B" * MiB, 64), (b'"}\n', 1)
    )
    with gzip.open(bomb, "ab") as fh:
        fh.write(_line(GOOD | {"prompt": "after"}))
    reader = RecordReader(bomb, ReadLimits(max_decompressed=1 << 40, max_line=1 * MiB))
    tracemalloc.start()
    try:
        records = list(reader)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [line for line, _ in records] == [1, 2, 3]
    assert (
        isinstance(records[1][1], InvalidRecord) and "ARBITER_IMPORT_MAX_LINE_BYTES" in records[1][1].message
    )
    assert records[2][1]["prompt"] == "after"
    assert peak < 16 * MiB, f"peak {peak / MiB:.1f} MiB reading a 64 MiB line"


def test_a_line_over_the_limit_is_a_bad_line_with_its_number(project, tmp_path, settings):
    settings.ARBITER_IMPORT_MAX_LINE_BYTES = 1000
    path = tmp_path / "long.jsonl"
    path.write_bytes(_line(GOOD) + _line(GOOD | {"prompt": "x" * 5000}) + _line(GOOD | {"prompt": "third"}))
    failed = _refused(project, path)
    assert error_lines(failed.report) == [(2, None)]
    assert "longer than the limit" in failed.report.errors[0].message
    report = import_file(path, project=project, fmt="generic", skip_invalid=True)
    assert (report.ok_lines, report.bad_lines) == (2, 1)


def test_gzip_of_blank_lines_is_stepped_over_and_counted(project, tmp_path):
    """16 MiB of newlines (a gzip of 16 KiB), then a line: imported, and its line number is right."""
    path = _gzip(tmp_path / "blank.jsonl.gz", (b"\n" * MiB, 16), (b"  \r\n", 3), (_line(GOOD), 1))
    report = import_file(path, project=project, fmt="generic")
    assert (report.total_lines, report.ok_lines) == (1, 1)
    path = _gzip(tmp_path / "blank-bad.jsonl.gz", (b"\n" * MiB, 16), (b"  \r\n", 3), (b"[1]\n", 1))
    failed = _refused(project, path)
    assert error_lines(failed.report) == [(16 * MiB + 4, None)]


def test_gzip_of_blank_lines_past_the_decompressed_limit_commits_nothing(project, tmp_path, settings):
    settings.ARBITER_IMPORT_MAX_DECOMPRESSED_BYTES = 4 * MiB
    path = _gzip(tmp_path / "blank.jsonl.gz", (_line(GOOD), 1), (b"\n" * MiB, 64), (_line(GOOD), 1))
    before = counts(project)
    with pytest.raises(ImportLimitExceeded, match="decompresses to more than the limit of 4.0 MiB"):
        import_file(path, project=project, fmt="generic")
    assert counts(project) == before


def test_parquet_that_unpacks_past_the_limit_is_refused(project, tmp_path, settings):
    settings.ARBITER_IMPORT_MAX_DECOMPRESSED_BYTES = 1 * MiB
    path = tmp_path / "big.parquet"
    table = pa.table({"prompt": ["p" * 1000 + str(i) for i in range(2000)], "responses": [["a", "b"]] * 2000})
    pq.write_table(table, path, compression="zstd")
    assert path.stat().st_size < MiB
    before = counts(project)
    with pytest.raises(ImportLimitExceeded, match="Parquet file decompresses to"):
        import_file(path, project=project, fmt="generic")
    assert counts(project) == before


@pytest.mark.parametrize(
    ("setting", "fmt", "record", "field"),
    [
        ("ARBITER_IMPORT_MAX_PROMPT_CHARS", "generic", GOOD | {"prompt": "p" * 101}, "prompt"),
        (
            "ARBITER_IMPORT_MAX_PROMPT_CHARS",
            "trl",
            {
                "chosen": [{"role": "user", "content": "q" * 101}, {"role": "assistant", "content": "a"}],
                "rejected": [{"role": "user", "content": "q" * 101}, {"role": "assistant", "content": "b"}],
            },
            "chosen",
        ),
        (
            "ARBITER_IMPORT_MAX_RESPONSE_CHARS",
            "generic",
            GOOD | {"responses": ["a", "b", "r" * 101]},
            "responses[2]",
        ),
        (
            "ARBITER_IMPORT_MAX_RESPONSE_CHARS",
            "trl",
            {"prompt": "q", "chosen": "c", "rejected": "r" * 101},
            "rejected",
        ),
        (
            "ARBITER_IMPORT_MAX_RESPONSE_CHARS",
            "raw",
            {"prompt": "q", "response_a": {"text": "r" * 101}, "response_b": "b", "annotator": "ann"},
            "response_a",
        ),
        (
            "ARBITER_IMPORT_MAX_RESPONSE_CHARS",
            "safe-rlhf",
            {
                "prompt": "q",
                "response_0": "a",
                "response_1": "r" * 101,
                "is_response_0_safe": True,
                "is_response_1_safe": True,
                "better_response_id": 0,
                "safer_response_id": 0,
            },
            "response_1",
        ),
        (
            "ARBITER_IMPORT_MAX_RESPONSE_CHARS",
            "hh",
            {"chosen": "\n\nHuman: q\n\nAssistant: " + "c" * 101, "rejected": "\n\nHuman: q\n\nAssistant: r"},
            "chosen",
        ),
        (
            "ARBITER_IMPORT_MAX_RESPONSES",
            "generic",
            GOOD | {"responses": [str(i) for i in range(101)]},
            "responses",
        ),
        (
            "ARBITER_IMPORT_MAX_MESSAGES",
            "generic",
            GOOD | {"prompt": [{"role": "user", "content": str(i)} for i in range(101)]},
            "prompt",
        ),
    ],
)
def test_each_field_limit_names_line_and_field_and_commits_nothing(
    project, tmp_path, settings, setting, fmt, record, field
):
    setattr(settings, setting, 100)
    path = tmp_path / "limits.jsonl"
    fine = {
        "generic": GOOD,
        "trl": {"prompt": "q", "chosen": "c", "rejected": "r"},
        "raw": {"prompt": "q", "response_a": "a", "response_b": "b", "annotator": "ann"},
        "safe-rlhf": {**record, "response_1": "b"} if fmt == "safe-rlhf" else None,
        "hh": {"chosen": "\n\nHuman: q\n\nAssistant: c", "rejected": "\n\nHuman: q\n\nAssistant: r"},
    }[fmt]
    path.write_bytes(_line(fine) + _line(record))
    failed = _refused(project, path, fmt=fmt)
    assert error_lines(failed.report) == [(2, field)]
    assert setting in failed.report.errors[0].message and "more than 100" in failed.report.errors[0].message


@hypothesis_settings(max_examples=200, deadline=None, database=None)
@given(
    data=st.lists(
        st.sampled_from([b"\n", b" ", b"\r\n", b"\t", b"{}", b"[1]", b"abc", b"x" * 9]), max_size=40
    ),
    block=st.integers(min_value=1, max_value=16),
    max_line=st.integers(min_value=1, max_value=12),
)
def test_bounded_lines_agree_with_a_plain_split(data, block, max_line):
    """Whatever the block size, the lines (and their numbers) are those of a plain split; a line over the limit
    comes out as an InvalidRecord at its number."""
    raw = b"".join(data)
    want = []
    for number, line in enumerate(raw.split(b"\n"), 1):
        content = line.lstrip(b" \t\r")
        if content.strip():
            want.append((number, content if len(content) <= max_line else "too long"))
    got = [
        (number, "too long" if isinstance(line, InvalidRecord) else line)
        for number, line in bounded_lines(io.BytesIO(raw), max_line=max_line, max_total=None, block=block)
    ]
    assert got == want


def test_evaluating_a_gzip_bomb_is_a_clear_evaluation_error(tmp_path, settings):
    from rewardtrain.eval_reading import EvaluationError, parsed_pairs

    settings.ARBITER_IMPORT_MAX_DECOMPRESSED_BYTES = 2 * MiB
    bomb = _gzip(tmp_path / "eval.jsonl.gz", (b"\n" * MiB, 8))
    with pytest.raises(EvaluationError, match=r"eval\.jsonl\.gz:\d+: the file decompresses to more than"):
        list(parsed_pairs(bomb, "generic"))
