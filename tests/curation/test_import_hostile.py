"""Hostile input to every importer format: random bytes, invalid UTF-8, huge lines, duplicate keys, deep nesting,
wrong types in every field, NaN/Infinity, lone surrogates, empty files, BOM, CRLF, corrupt gzip and Parquet.

Always a clear error (ImportFailed with line numbers, or a ValueError/SetupError with a message) or a clean
import — never another exception, and never a partial import (row counts unchanged when it fails). Examples are
bounded (Hypothesis `max_examples`, ARBITER_HOSTILE_EXAMPLES, default 40); the total number of inputs tried is printed by the last test
(`pytest -s tests.curation.test_import_hostile.py`).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from curation.importers import FORMATS, ImportFailed, import_file
from tests.curation.importing import counts, fixture

pytestmark = pytest.mark.django_db

TRIED = {"inputs": 0}
EXAMPLES = int(os.environ.get("ARBITER_HOSTILE_EXAMPLES", "40"))  # per property; raise for a longer hunt
HYPO = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
    database=None,
)

GOOD = {
    "trl": fixture("trl_good.jsonl"),
    "hh": fixture("hh_good.jsonl"),
    "safe-rlhf": fixture("safe_rlhf_good.jsonl"),
    "generic": fixture("generic_good.jsonl"),
    "raw": fixture("raw_good.jsonl"),
}


def good_record(fmt: str) -> dict:
    return json.loads(GOOD[fmt].read_text().splitlines()[0])


def _write(tmp: Path, data: bytes, suffix: str = ".jsonl") -> Path:
    path = tmp / f"hostile-{uuid.uuid4().hex}{suffix}"
    path.write_bytes(data)
    return path


def assert_clear_outcome(project, path: Path, fmt: str, skip_invalid: bool = False) -> str:
    """Import `path`; the outcome is a clean import, or a clear error that changed nothing. Returns which."""
    TRIED["inputs"] += 1
    before = counts(project)
    try:
        report = import_file(path, project=project, fmt=fmt, skip_invalid=skip_invalid)
    except ImportFailed as exc:
        errors = exc.report.errors
        assert errors, "ImportFailed without a line error"
        assert all(e.line >= 1 and e.message for e in errors), errors
        assert counts(project) == before, "a failed import changed rows"
        return "failed"
    except ValueError as exc:  # SetupError is a ValueError
        assert str(exc)
        assert counts(project) == before, "a refused import changed rows"
        return "refused"
    finally:
        path.unlink(missing_ok=True)
    assert report.committed
    assert report.bad_lines == 0 or skip_invalid
    return "imported"


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@HYPO
@given(fmt=st.sampled_from(FORMATS), data=st.binary(max_size=2000), skip=st.booleans())
@example(fmt="trl", data=b"", skip=False)
@example(fmt="hh", data=b"\xff\xfe\xfa\x00{}\n", skip=False)
@example(fmt="raw", data=b"\x1f\x8b\x08\x00garbage", skip=True)
@example(fmt="generic", data=b"PAR1 this is not parquet PAR1", skip=False)
def test_random_bytes_give_a_clear_outcome(project, tmp_path, fmt, data, skip):
    assert_clear_outcome(project, _write(tmp_path, data), fmt, skip)


@HYPO
@given(fmt=st.sampled_from(FORMATS), data=st.data(), skip=st.booleans())
def test_wrong_types_in_any_field_give_a_clear_outcome(project, tmp_path, fmt, data, skip):
    record = good_record(fmt)
    for key in data.draw(st.lists(st.sampled_from(sorted(record)), min_size=1, max_size=3, unique=True)):
        record[key] = data.draw(json_values)
    if data.draw(st.booleans()):
        record[data.draw(st.text(max_size=10))] = data.draw(json_values)
    line = json.dumps(record, allow_nan=True)  # NaN / Infinity literals, lone surrogates as \\ud800 escapes
    assert_clear_outcome(project, _write(tmp_path, (line + "\n").encode()), fmt, skip)


@HYPO
@given(fmt=st.sampled_from(FORMATS), text=st.text(max_size=200), where=st.sampled_from(["value", "key"]))
def test_surrogates_and_odd_text_in_fields_give_a_clear_outcome(project, tmp_path, fmt, text, where):
    record = good_record(fmt)
    key = sorted(record)[0]
    if where == "value":
        record[key] = text + "\ud800"
    else:
        record[text + "\udfff"] = record.pop(key)
    line = json.dumps(record)  # ensure_ascii: the lone surrogates travel as escapes
    assert_clear_outcome(project, _write(tmp_path, (line + "\n").encode()), fmt)


@HYPO
@given(fmt=st.sampled_from(FORMATS), cut=st.integers(min_value=0, max_value=400), skip=st.booleans())
def test_truncated_or_corrupt_gzip_gives_a_clear_outcome(project, tmp_path, fmt, cut, skip):
    body = GOOD[fmt].read_bytes() * 3
    packed = gzip.compress(body)
    cut = min(cut, len(packed) - 1)
    damaged = packed[:cut] if cut % 2 else packed[:cut] + b"\x00\xff" * 8 + packed[cut + 16 :]
    assert_clear_outcome(project, _write(tmp_path, damaged, ".jsonl.gz"), fmt, skip)


@HYPO
@given(
    fmt=st.sampled_from(FORMATS), cut=st.integers(min_value=4, max_value=4000), noise=st.binary(max_size=64)
)
def test_garbage_or_truncated_parquet_gives_a_clear_outcome(project, tmp_path, fmt, cut, noise):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [good_record(fmt)] * 3
    buf = io.BytesIO()
    try:
        pq.write_table(pa.Table.from_pylist(rows), buf)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):  # a shape Parquet cannot hold
        buf = io.BytesIO(b"PAR1")
    raw = buf.getvalue()
    damaged = raw[: min(cut, len(raw))] + noise
    assert_clear_outcome(project, _write(tmp_path, damaged, ".parquet"), fmt)


# --- fixed hostile files -------------------------------------------------------------------------------------


def _line(fmt: str) -> bytes:
    return json.dumps(good_record(fmt)).encode()


HOSTILE_FILES = {
    "empty": lambda fmt: b"",
    "only-blank-lines": lambda fmt: b"\n\r\n  \n",
    "bom": lambda fmt: b"\xef\xbb\xbf" + _line(fmt) + b"\n",
    "crlf": lambda fmt: _line(fmt) + b"\r\n" + _line(fmt) + b"\r\n",
    "invalid-utf8": lambda fmt: _line(fmt)[:-2] + b'\xff\xfe"}\n',
    "invalid-utf8-inside-a-string": lambda fmt: _line(fmt).replace(b'": "', b'": "\xc3\x28', 1) + b"\n",
    "huge-line": lambda fmt: json.dumps({**good_record(fmt), "padding": "x" * 3_000_000}).encode() + b"\n",
    "huge-value": lambda fmt: _line(fmt).replace(b'": "', b'": "' + b"y" * 3_000_000, 1) + b"\n",
    "duplicate-keys": lambda fmt: b"{" + _line(fmt)[1:-1] + b", " + _line(fmt)[1:-1] + b"}\n",
    "duplicate-key-wrong-type-last": lambda fmt: (
        _line(fmt)[:-1] + b", " + json.dumps(sorted(good_record(fmt))[0]).encode() + b": 42}\n"
    ),
    "deep-nesting": lambda fmt: b"[" * 10_000 + b"]" * 10_000 + b"\n",
    "deep-nesting-in-a-field": lambda fmt: (
        _line(fmt)[:-1] + b', "deep": ' + b"[" * 10_000 + b"]" * 10_000 + b"}\n"
    ),
    "nan-infinity": lambda fmt: _line(fmt)[:-1] + b', "preference": NaN, "x": Infinity, "y": -Infinity}\n',
    "not-objects": lambda fmt: b'[1, 2]\n"text"\n42\nnull\ntrue\n',
    "nul-bytes": lambda fmt: b"\x00" * 100 + b"\n" + _line(fmt) + b"\n",
    "good-then-bad": lambda fmt: _line(fmt) + b"\n{not json\n",
    "huge-integer": lambda fmt: _line(fmt)[:-1] + b', "preference": ' + b"9" * 5000 + b"}\n",
}


@pytest.mark.parametrize("name", sorted(HOSTILE_FILES))
@pytest.mark.parametrize("fmt", FORMATS)
def test_hostile_file_gives_a_clear_outcome(project, tmp_path, fmt, name):
    data = HOSTILE_FILES[name](fmt)
    outcome = assert_clear_outcome(project, _write(tmp_path, data), fmt)
    if name in {"invalid-utf8", "deep-nesting", "not-objects", "good-then-bad"}:
        assert outcome == "failed", outcome
    gz = _write(tmp_path, gzip.compress(data), ".jsonl.gz")
    assert assert_clear_outcome(project, gz, fmt) == outcome


def test_a_failed_import_reports_line_numbers(project, tmp_path):
    data = _line("trl") + b"\n" + b"[" * 10_000 + b"]" * 10_000 + b"\n" + _line("trl")[:-5] + b"\n"
    before = counts(project)
    with pytest.raises(ImportFailed) as info:
        import_file(_write(tmp_path, data), project=project, fmt="trl")
    assert [e.line for e in info.value.report.errors] == [2, 3]
    assert counts(project) == before
    TRIED["inputs"] += 1


def test_zz_total_hostile_inputs_tried():
    """Runs last in this module: the figure to quote."""
    total = TRIED["inputs"]
    print(f"\nhostile import inputs tried: {total}")
    assert total >= 5 * EXAMPLES
