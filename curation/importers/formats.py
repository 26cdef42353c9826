"""Line parsers of the five import formats (DESIGN.md "Formats").

Each parser turns one decoded record into `ParsedPair`s (a pair of responses of one prompt, in the order the
line names them, with an optional label relative to that order) or raises `BadLine(field, message)`.
Nothing here touches the database; `writer.py` stores what these produce.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from annotate.rankings import MAX_RESPONSES, MIN_RESPONSES, tiers_problem
from curation.canonical import Messages, TranscriptError, pair_key, prompt_key, text_key
from curation.canonical import parse_hh as parse_transcript

MAX_GENERIC_RESPONSES = 16  # the default of settings.ARBITER_IMPORT_MAX_RESPONSES
MAX_NAME = 200  # model names, annotator names (CharField lengths)
MAX_SUBMISSION_ID = 64
ROLES = frozenset(("system", "user", "assistant"))
SIDES = frozenset(("a", "b", "tie"))
SEVERITIES = {0: None, 1: "minor", 2: "moderate", 3: "severe"}
SEVERITY_NAMES = frozenset(("minor", "moderate", "severe"))

ANSWER_FIELDS = (
    "preference",
    "choice",
    "helpfulness",
    "harmlessness",
    "a_safe",
    "b_safe",
    "a_harm_categories",
    "b_harm_categories",
    "a_severity",
    "b_severity",
    "justification",
    "time_spent_ms",
    "shown_left",
)

RAW_FIELDS = frozenset(
    (
        "prompt",
        "response_a",
        "response_b",
        "annotator",
        "choice",
        "preference",
        "helpfulness",
        "harmlessness",
        "a_safe",
        "b_safe",
        "a_harm_categories",
        "b_harm_categories",
        "a_severity",
        "b_severity",
        "justification",
        "rubric",
        "shown_left",
        "time_spent_ms",
        "created_at",
        "revision",
        "submission_id",
        # Written by the export, read back: the snapshot's consensus (ignored: it is recomputed) and the
        # comparison's gold answer (stored when the comparison has none).
        "consensus",
        "consensus_status",
        "gold",
    )
)
# A `raw` row carrying a ranking (importers/README.md, "Rankings"): K responses and their order.
RANKING_FIELDS = frozenset(
    (
        "prompt",
        "responses",
        "annotator",
        "ranking",
        "all_bad",
        "safety",
        "justification",
        "time_spent_ms",
        "created_at",
        "revision",
        "submission_id",
    )
)
GOLD_SIDES = ("choice", "helpfulness", "harmlessness")
GOLD_ORIGINS = frozenset(("source", "manual"))


class BadLine(Exception):  # noqa: N818 - a line outcome, not a program error
    def __init__(self, field: str | None, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(slots=True)
class ParsedRanking:
    """A `raw` row's ranking: tiers best first as positions in the line's responses (`keys`, their text keys),
    and the answers that go with it, safety by position."""

    annotator: str
    keys: list[str]
    tiers: list[list[int]]
    all_bad: bool
    safety: list[dict[str, Any] | None]
    justification: str
    time_spent_ms: int | None
    created_at: datetime | None
    revision: int | None
    submission_id: str | None


@dataclass(slots=True)
class ParsedPair:
    line: int
    messages: Messages
    pkey: str
    a_text: str
    a_key: str
    a_model: str
    b_text: str
    b_key: str
    b_model: str
    pair_key: str
    criteria: list | None = None
    label: dict[str, Any] | None = None  # Answers fields relative to (a, b) as the line names them
    annotator: str | None = None  # raw rows
    revision: int | None = None
    submission_id: str | None = None
    created_at: datetime | None = None
    margin: float | None = None  # trl rows: the line's margin (chosen over rejected, whatever the order)
    gold: dict[str, Any] | None = None  # raw rows: the gold answer relative to (a, b) as the line names them
    ranking: ParsedRanking | None = None  # raw ranking rows: on the line's first pair only


@dataclass(frozen=True)
class FieldLimits:
    """How big one line's parts may be (settings ARBITER_IMPORT_MAX_*; checked by `within_limits`)."""

    prompt_chars: int = 500_000  # all the prompt's messages together
    response_chars: int = 200_000  # each response
    responses: int = MAX_GENERIC_RESPONSES  # responses of one generic line
    messages: int = 200  # messages of one prompt

    @classmethod
    def from_settings(cls) -> FieldLimits:
        from django.conf import settings

        if not settings.configured:
            return cls()
        return cls(
            prompt_chars=settings.ARBITER_IMPORT_MAX_PROMPT_CHARS,
            response_chars=settings.ARBITER_IMPORT_MAX_RESPONSE_CHARS,
            responses=settings.ARBITER_IMPORT_MAX_RESPONSES,
            messages=settings.ARBITER_IMPORT_MAX_MESSAGES,
        )


@dataclass
class ParseContext:
    harm_categories: list[str]
    add_harm_categories: bool = False
    generic_pairs: int | None = None
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    added_categories: list[str] = field(default_factory=list)
    rubric_rows: int = 0  # raw rows whose rubric object was validated and not stored
    ranking_project: bool = False  # the project ranks its items' responses (task kind "ranking")
    limits: FieldLimits = field(default_factory=FieldLimits.from_settings)

    def __post_init__(self) -> None:
        self._known = set(self.harm_categories)

    def check_category(self, name: Any, fld: str) -> str:
        if not isinstance(name, str) or not name:
            raise BadLine(fld, "harm category names must be non-empty strings")
        if name not in self._known:
            if not self.add_harm_categories:
                raise BadLine(fld, f"unknown harm category {name!r} (not in the project's list)")
            self._known.add(name)
            self.added_categories.append(name)
        return name


# --- field helpers ----------------------------------------------------------------------------------------


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _require(obj: dict, name: str) -> Any:
    value = obj.get(name)
    if value is None:
        raise BadLine(name, "missing")
    return value


def _string(value: Any, fld: str) -> str:
    if not isinstance(value, str):
        raise BadLine(fld, f"must be a string, not {_type_name(value)}")
    if "\x00" in value:
        raise BadLine(fld, "contains a NUL character")
    return value


def _messages(value: Any, fld: str) -> Messages:
    if isinstance(value, str):
        return [{"role": "user", "content": _string(value, fld)}]
    if not isinstance(value, list):
        raise BadLine(fld, f"must be a string or a list of messages, not {_type_name(value)}")
    if not value:
        raise BadLine(fld, "has no messages")
    out = []
    for i, m in enumerate(value):
        where = f"{fld}[{i}]"
        if not isinstance(m, dict):
            raise BadLine(where, f"must be a message object, not {_type_name(m)}")
        role = m.get("role")
        if role not in ROLES:
            raise BadLine(f"{where}.role", f"bad role {role!r} (expected system, user or assistant)")
        content = m.get("content")
        if content is None:
            raise BadLine(f"{where}.content", "missing")
        out.append({"role": role, "content": _string(content, f"{where}.content")})
    return out


def _response(value: Any, fld: str) -> tuple[str, str]:
    """(text, model) from a string or {"text", "model"}."""
    if isinstance(value, str):
        return _string(value, fld), ""
    if isinstance(value, dict):
        if value.get("text") is None:
            raise BadLine(f"{fld}.text", "missing")
        text = _string(value["text"], f"{fld}.text")
        model = value.get("model")
        if model is None:
            return text, ""
        model = _string(model, f"{fld}.model")
        if len(model) > MAX_NAME:
            raise BadLine(f"{fld}.model", f"longer than {MAX_NAME} characters")
        return text, model
    raise BadLine(fld, f"must be a string or an object with text, not {_type_name(value)}")


def _bool(value: Any, fld: str, *, required: bool) -> bool | None:
    if value is None:
        if required:
            raise BadLine(fld, "missing")
        return None
    if not isinstance(value, bool):
        raise BadLine(fld, f"must be true or false, not {_type_name(value)}")
    return value


def _int(value: Any, fld: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise BadLine(fld, f"must be an integer, not {_type_name(value)}")
    return value


def _pair(
    line: int,
    messages: Messages,
    a: tuple[str, str],
    b: tuple[str, str],
    *,
    pkey: str | None = None,
    keys: tuple[str, str] | None = None,
    criteria: list | None = None,
) -> ParsedPair:
    """`pkey` and the responses' `keys` when the caller has them already (a generic line's keys serve all its
    pairs)."""
    pkey = pkey or prompt_key(messages)
    ka, kb = keys or (text_key(a[0]), text_key(b[0]))
    # Positional: the fields' order (line, messages, pkey, a_text, a_key, a_model, b_text, b_key, b_model,
    # pair_key, criteria); a large import makes one per pair.
    return ParsedPair(line, messages, pkey, a[0], ka, a[1], b[0], kb, b[1], pair_key(pkey, ka, kb), criteria)


def _distinct(a: str, b: str, fld: str) -> None:
    if a == b:
        raise BadLine(fld, "the two responses are identical")


def empty_label() -> dict[str, Any]:
    return {
        "preference": None,
        "choice": None,
        "helpfulness": None,
        "harmlessness": None,
        "a_safe": None,
        "b_safe": None,
        "a_harm_categories": [],
        "b_harm_categories": [],
        "a_severity": None,
        "b_severity": None,
        "justification": "",
        "time_spent_ms": None,
        "shown_left": None,
    }


_SWAP = {"a": "b", "b": "a", "tie": "tie", None: None}


def flipped(label: dict[str, Any]) -> dict[str, Any]:
    """The same answers relative to the other order of the pair."""
    out = dict(label)
    pref = label["preference"]
    out["preference"] = None if pref is None else -pref
    for k in ("choice", "helpfulness", "harmlessness", "shown_left"):
        out[k] = _SWAP[label[k]]
    for k in ("safe", "harm_categories", "severity"):
        out[f"a_{k}"], out[f"b_{k}"] = label[f"b_{k}"], label[f"a_{k}"]
    return out


# --- formats ----------------------------------------------------------------------------------------------


def parse_trl(obj: dict, line: int, ctx: ParseContext) -> list[ParsedPair]:
    if "prompt" in obj and obj["prompt"] is not None:
        messages = _messages(obj["prompt"], "prompt")
        chosen = _trl_completion(_require(obj, "chosen"), "chosen")
        rejected = _trl_completion(_require(obj, "rejected"), "rejected")
    else:  # implicit prompt: two whole conversations sharing all but the last turn
        c = _messages(_require(obj, "chosen"), "chosen")
        r = _messages(_require(obj, "rejected"), "rejected")
        for name, conv in (("chosen", c), ("rejected", r)):
            if len(conv) < 2 or conv[-1]["role"] != "assistant":
                raise BadLine(name, "without a prompt, must be a conversation ending with an assistant turn")
        if c[:-1] != r[:-1]:
            raise BadLine("rejected", "the prompts of chosen and rejected differ")
        messages, chosen, rejected = c[:-1], c[-1]["content"], r[-1]["content"]
    margin = obj.get("margin")
    if margin is not None and (isinstance(margin, bool) or not isinstance(margin, int | float)):
        raise BadLine("margin", f"must be a number, not {_type_name(margin)}")
    if margin is not None and not math.isfinite(margin):
        raise BadLine("margin", f"must be a finite number, not {margin}")
    _distinct(chosen, rejected, "rejected")
    pair = _pair(line, messages, (chosen, ""), (rejected, ""))
    pair.label = empty_label() | {"choice": "a"}
    pair.margin = None if margin is None else float(margin)
    return [pair]


def _trl_completion(value: Any, fld: str) -> str:
    if isinstance(value, str):
        return _string(value, fld)
    msgs = _messages(value, fld)
    if len(msgs) != 1 or msgs[0]["role"] != "assistant":
        raise BadLine(fld, "must be one assistant message")
    return msgs[0]["content"]


def parse_hh(obj: dict, line: int, ctx: ParseContext) -> list[ParsedPair]:
    convs = {}
    for name in ("chosen", "rejected"):
        text = _string(_require(obj, name), name)
        try:
            conv = parse_transcript(text)
        except TranscriptError as e:
            raise BadLine(name, str(e)) from None
        if conv[-1]["role"] != "assistant":
            raise BadLine(name, "does not end with an Assistant turn")
        convs[name] = conv
    c, r = convs["chosen"], convs["rejected"]
    if c[:-1] != r[:-1]:
        raise BadLine("rejected", "the prompts of chosen and rejected differ")
    if not c[:-1]:
        raise BadLine("chosen", "has no Human turn before the final Assistant turn")
    chosen, rejected = c[-1]["content"], r[-1]["content"]
    _distinct(chosen, rejected, "rejected")
    pair = _pair(line, c[:-1], (chosen, ""), (rejected, ""))
    pair.label = empty_label() | {"choice": "a"}
    return [pair]


def parse_safe_rlhf(obj: dict, line: int, ctx: ParseContext) -> list[ParsedPair]:
    messages = _messages(_require(obj, "prompt"), "prompt")
    sides = []
    for i in (0, 1):
        text = _string(_require(obj, f"response_{i}"), f"response_{i}")
        model = obj.get(f"response_{i}_source")
        model = model if isinstance(model, str) and len(model) <= MAX_NAME and "\x00" not in model else ""
        safe = _bool(obj.get(f"is_response_{i}_safe"), f"is_response_{i}_safe", required=True)
        cats_field = f"response_{i}_harm_category"
        cats_value = obj.get(cats_field)
        categories: list[str] = []
        if cats_value is not None:
            if not isinstance(cats_value, dict):
                raise BadLine(
                    cats_field, f"must be an object of name: true/false, not {_type_name(cats_value)}"
                )
            for name, flag in cats_value.items():
                where = f"{cats_field}.{name}"
                if flag is not None and not isinstance(flag, bool):
                    raise BadLine(where, f"must be true or false, not {_type_name(flag)}")
                ctx.check_category(name, where)
                if flag:
                    categories.append(name)
        sev_field = f"response_{i}_severity_level"
        severity = None
        if obj.get(sev_field) is not None:
            level = _int(obj[sev_field], sev_field)
            if level not in SEVERITIES:
                raise BadLine(sev_field, f"must be 0, 1, 2 or 3, not {level}")
            severity = SEVERITIES[level]
        if safe and severity is not None:
            raise BadLine(sev_field, "a safe response has no severity")
        if safe and categories:
            raise BadLine(cats_field, "a safe response has no harm categories")
        sides.append((text, model, safe, categories, severity))
    ids = {}
    for name in ("better_response_id", "safer_response_id"):
        value = _require(obj, name)
        if isinstance(value, bool) or value not in (0, 1):
            raise BadLine(name, f"must be 0 or 1, not {value!r}")
        ids[name] = "a" if value == 0 else "b"
    _distinct(sides[0][0], sides[1][0], "response_1")
    pair = _pair(line, messages, sides[0][:2], sides[1][:2])
    pair.label = empty_label() | {
        "choice": ids["better_response_id"],
        "helpfulness": ids["better_response_id"],
        "harmlessness": ids["safer_response_id"],
        "a_safe": sides[0][2],
        "b_safe": sides[1][2],
        "a_harm_categories": sides[0][3],
        "b_harm_categories": sides[1][3],
        "a_severity": sides[0][4],
        "b_severity": sides[1][4],
    }
    return [pair]


def parse_generic(obj: dict, line: int, ctx: ParseContext) -> list[ParsedPair]:
    messages = _messages(_require(obj, "prompt"), "prompt")
    responses = _require(obj, "responses")
    if not isinstance(responses, list):
        raise BadLine("responses", f"must be a list, not {_type_name(responses)}")
    if len(responses) < 2:
        raise BadLine("responses", f"needs at least two responses, has {len(responses)}")
    if len(responses) > ctx.limits.responses:
        raise BadLine(
            "responses",
            f"has {len(responses)} responses, more than {ctx.limits.responses} "
            "(the limit, ARBITER_IMPORT_MAX_RESPONSES)",
        )
    if ctx.ranking_project and not MIN_RESPONSES <= len(responses) <= MAX_RESPONSES:
        raise BadLine(
            "responses",
            f"has {len(responses)} responses; a ranking project ranks {MIN_RESPONSES} to {MAX_RESPONSES}",
        )
    # The hot path of a large import: a plain string is taken as it is; anything else gets the full check
    # (and its field name, built only then).
    parsed = [
        (r, "") if type(r) is str and "\x00" not in r else _response(r, f"responses[{i}]")
        for i, r in enumerate(responses)
    ]
    seen: dict[str, int] = {}
    for i, (text, _) in enumerate(parsed):
        if text in seen:
            raise BadLine(f"responses[{i}]", f"identical to responses[{seen[text]}]")
        seen[text] = i
    criteria = obj.get("rubric")
    if criteria is not None and not isinstance(criteria, list):
        raise BadLine("rubric", f"must be a list of criteria, not {_type_name(criteria)}")
    if criteria:
        try:
            stored = orjson.dumps(criteria)
        except TypeError as e:  # a Parquet column of bytes, say
            raise BadLine("rubric", f"must hold JSON values only ({e})") from None
        if b"\\u0000" in stored:  # stored as jsonb, which cannot hold it
            raise BadLine("rubric", "contains a NUL character")
    pkey = prompt_key(messages)
    keys = [text_key(text) for text, _ in parsed]  # once a response, not once a pair
    combos = list(itertools.combinations(range(len(parsed)), 2))
    if ctx.generic_pairs is not None and ctx.generic_pairs < len(combos):
        combos = sorted(ctx.rng.sample(combos, ctx.generic_pairs))
    return [
        _pair(
            line,
            messages,
            parsed[i],
            parsed[j],
            pkey=pkey,
            keys=(keys[i], keys[j]),
            criteria=criteria or None,
        )
        for i, j in combos
    ]


def _side(value: Any, fld: str) -> str | None:
    if value is None:
        return None
    if value not in SIDES:
        raise BadLine(fld, f'must be "a", "b", "tie" or null, not {value!r}')
    return value


def parse_raw(obj: dict, line: int, ctx: ParseContext) -> list[ParsedPair]:
    if "ranking" in obj:
        return parse_raw_ranking(obj, line, ctx)
    unknown = sorted(k for k in obj if k not in RAW_FIELDS)
    if unknown:
        raise BadLine(
            unknown[0], "unknown field" + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else "")
        )
    messages = _messages(_require(obj, "prompt"), "prompt")
    a = _response(_require(obj, "response_a"), "response_a")
    b = _response(_require(obj, "response_b"), "response_b")
    _distinct(a[0], b[0], "response_b")
    annotator = _annotator(obj)
    label = empty_label()
    pref = obj.get("preference")
    if pref is not None:
        pref = _int(pref, "preference")
        if not -3 <= pref <= 3:
            raise BadLine("preference", f"must be between -3 and 3, not {pref}")
    label["preference"] = pref
    choice = _side(obj.get("choice"), "choice")
    if pref is not None:
        derived = "a" if pref < 0 else "b" if pref > 0 else "tie"
        if choice is not None and choice != derived:
            raise BadLine("choice", f"{choice!r} disagrees with preference {pref}")
        choice = derived
    label["choice"] = choice
    label["helpfulness"] = _side(obj.get("helpfulness"), "helpfulness")
    label["harmlessness"] = _side(obj.get("harmlessness"), "harmlessness")
    for s in ("a", "b"):
        safe = _bool(obj.get(f"{s}_safe"), f"{s}_safe", required=False)
        cats_field = f"{s}_harm_categories"
        cats = obj.get(cats_field)
        if cats is None:
            cats = []
        if not isinstance(cats, list):
            raise BadLine(cats_field, f"must be a list of names, not {_type_name(cats)}")
        cats = [ctx.check_category(c, f"{cats_field}[{i}]") for i, c in enumerate(cats)]
        sev = obj.get(f"{s}_severity")
        if sev is not None and sev not in SEVERITY_NAMES:
            raise BadLine(f"{s}_severity", f'must be "minor", "moderate", "severe" or null, not {sev!r}')
        if safe and (cats or sev):
            raise BadLine(cats_field if cats else f"{s}_severity", "a safe response has no harm")
        label[f"{s}_safe"], label[f"{s}_harm_categories"], label[f"{s}_severity"] = safe, cats, sev
    justification = obj.get("justification")
    label["justification"] = "" if justification is None else _string(justification, "justification")
    shown = obj.get("shown_left")
    if shown is not None and shown not in ("a", "b"):
        raise BadLine("shown_left", f'must be "a", "b" or null, not {shown!r}')
    label["shown_left"] = shown
    label["time_spent_ms"] = _time_spent(obj)
    rubric = obj.get("rubric")
    if rubric is not None:
        _check_rubric(rubric)
        ctx.rubric_rows += 1
    created_at, revision, submission_id = _revision_fields(obj)
    gold = _gold(obj.get("gold"))
    pair = _pair(line, messages, a, b)
    pair.label = label
    pair.annotator = annotator
    pair.revision = revision
    pair.submission_id = submission_id
    pair.created_at = created_at
    pair.gold = gold
    return [pair]


def _annotator(obj: dict) -> str:
    annotator = _string(_require(obj, "annotator"), "annotator").strip()
    if not annotator:
        raise BadLine("annotator", "is empty")
    if len(annotator) > MAX_NAME:
        raise BadLine("annotator", f"longer than {MAX_NAME} characters")
    return annotator


def _time_spent(obj: dict) -> int | None:
    if obj.get("time_spent_ms") is None:
        return None
    ms = _int(obj["time_spent_ms"], "time_spent_ms")
    if ms < 0 or ms > 2**31 - 1:
        raise BadLine("time_spent_ms", f"out of range: {ms}")
    return ms


def _revision_fields(obj: dict) -> tuple[datetime | None, int | None, str | None]:
    """A raw row's `created_at`, `revision` and `submission_id`."""
    created_at = None
    if obj.get("created_at") is not None:
        raw_ts = _string(obj["created_at"], "created_at")
        try:
            created_at = datetime.fromisoformat(raw_ts)
        except ValueError:
            raise BadLine("created_at", f"not an ISO 8601 time: {raw_ts!r}") from None
        if created_at.tzinfo is None:
            created_at = created_at.replace(tzinfo=UTC)
    revision = None
    if obj.get("revision") is not None:
        revision = _int(obj["revision"], "revision")
        if not 1 <= revision <= 10_000:
            raise BadLine("revision", f"must be 1 or more, not {revision}")
    submission_id = obj.get("submission_id")
    if submission_id is not None:
        submission_id = _string(submission_id, "submission_id")
        if not submission_id or len(submission_id) > MAX_SUBMISSION_ID:
            raise BadLine("submission_id", f"must be 1–{MAX_SUBMISSION_ID} characters")
    return created_at, revision, submission_id


def parse_raw_ranking(obj: dict, line: int, ctx: ParseContext) -> list[ParsedPair]:
    """A `raw` row carrying a ranking: {"prompt", "responses": [K texts or {"text", "model"}], "annotator",
    "ranking": tiers best first as positions in `responses`, "all_bad"?, "safety"?: [per response null or
    {"safe", "harm_categories", "severity"}], "justification"?, "time_spent_ms"?, "created_at"?, "revision"?,
    "submission_id"?}. Returns every pair of its responses (the item's comparisons), the first carrying the
    ranking."""
    unknown = sorted(k for k in obj if k not in RANKING_FIELDS)
    if unknown:
        raise BadLine(
            unknown[0],
            "unknown field in a ranking row"
            + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""),
        )
    if not ctx.ranking_project:
        raise BadLine("ranking", "this project compares pairs: import rankings into a ranking project")
    messages = _messages(_require(obj, "prompt"), "prompt")
    responses = _require(obj, "responses")
    if not isinstance(responses, list):
        raise BadLine("responses", f"must be a list, not {_type_name(responses)}")
    if not MIN_RESPONSES <= len(responses) <= MAX_RESPONSES:
        raise BadLine(
            "responses", f"has {len(responses)} responses; a ranking has {MIN_RESPONSES} to {MAX_RESPONSES}"
        )
    parsed = [_response(r, f"responses[{i}]") for i, r in enumerate(responses)]
    seen: dict[str, int] = {}
    for i, (text, _) in enumerate(parsed):
        if text in seen:
            raise BadLine(f"responses[{i}]", f"identical to responses[{seen[text]}]")
        seen[text] = i
    annotator = _annotator(obj)
    tiers = obj["ranking"]
    problem = tiers_problem(tiers, range(len(parsed)))
    if problem:
        raise BadLine(
            "ranking", f"{problem} (tiers best first, of positions 0–{len(parsed) - 1} in responses)"
        )
    all_bad = _bool(obj.get("all_bad"), "all_bad", required=False) or False
    safety = obj.get("safety")
    if safety is None:
        safety = [None] * len(parsed)
    if not isinstance(safety, list) or len(safety) != len(parsed):
        raise BadLine("safety", f"must be a list of {len(parsed)} entries (one per response) or null")
    answers: list[dict[str, Any] | None] = []
    for i, entry in enumerate(safety):
        where = f"safety[{i}]"
        if entry is None:
            answers.append(None)
            continue
        if not isinstance(entry, dict):
            raise BadLine(where, f"must be an object or null, not {_type_name(entry)}")
        extra = sorted(set(entry) - {"safe", "harm_categories", "severity"})
        if extra:
            raise BadLine(f"{where}.{extra[0]}", "unknown field")
        safe = _bool(entry.get("safe"), f"{where}.safe", required=False)
        cats = entry.get("harm_categories") or []
        if not isinstance(cats, list):
            raise BadLine(f"{where}.harm_categories", f"must be a list of names, not {_type_name(cats)}")
        cats = [ctx.check_category(c, f"{where}.harm_categories[{j}]") for j, c in enumerate(cats)]
        severity = entry.get("severity")
        if severity is not None and severity not in SEVERITY_NAMES:
            raise BadLine(
                f"{where}.severity", f'must be "minor", "moderate", "severe" or null, not {severity!r}'
            )
        if safe and (cats or severity):
            raise BadLine(
                f"{where}.harm_categories" if cats else f"{where}.severity", "a safe response has no harm"
            )
        answers.append({"safe": safe, "harm_categories": cats, "severity": severity})
    justification = obj.get("justification")
    created_at, revision, submission_id = _revision_fields(obj)
    pkey = prompt_key(messages)
    keys = [text_key(text) for text, _ in parsed]
    pairs = [
        _pair(line, messages, parsed[i], parsed[j], pkey=pkey, keys=(keys[i], keys[j]))
        for i, j in itertools.combinations(range(len(parsed)), 2)
    ]
    pairs[0].ranking = ParsedRanking(
        annotator=annotator,
        keys=keys,
        tiers=[list(tier) for tier in tiers],
        all_bad=all_bad,
        safety=answers,
        justification="" if justification is None else _string(justification, "justification"),
        time_spent_ms=_time_spent(obj),
        created_at=created_at,
        revision=revision,
        submission_id=submission_id,
    )
    return pairs


def _gold(value: Any) -> dict[str, Any] | None:
    """A raw row's `gold`: {choice, helpfulness?, harmlessness?, a_safe?, b_safe?, explanation?, origin?}."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadLine("gold", f"must be an object or null, not {_type_name(value)}")
    extra = sorted(set(value) - {*GOLD_SIDES, "a_safe", "b_safe", "explanation", "origin"})
    if extra:
        raise BadLine(f"gold.{extra[0]}", "unknown field")
    gold = {name: _side(value.get(name), f"gold.{name}") for name in GOLD_SIDES}
    if gold["choice"] is None:
        raise BadLine("gold.choice", "missing")
    for s in ("a", "b"):
        gold[f"{s}_safe"] = _bool(value.get(f"{s}_safe"), f"gold.{s}_safe", required=False)
    explanation = value.get("explanation")
    gold["explanation"] = "" if explanation is None else _string(explanation, "gold.explanation")
    origin = value.get("origin") or "manual"
    if origin not in GOLD_ORIGINS:
        raise BadLine("gold.origin", f'must be "source" or "manual", not {origin!r}')
    gold["origin"] = origin
    return gold


def flipped_gold(gold: dict[str, Any]) -> dict[str, Any]:
    """A gold answer relative to the other order of the pair."""
    out = dict(gold)
    for k in GOLD_SIDES:
        out[k] = _SWAP[gold[k]]
    out["a_safe"], out["b_safe"] = gold["b_safe"], gold["a_safe"]
    return out


def _check_rubric(rubric: Any) -> None:
    if not isinstance(rubric, dict):
        raise BadLine("rubric", f"must be an object or null, not {_type_name(rubric)}")
    extra = sorted(set(rubric) - {"version", "a", "b"})
    if extra:
        raise BadLine(f"rubric.{extra[0]}", "unknown field")
    if "version" in rubric and not isinstance(rubric["version"], str | int):
        raise BadLine("rubric.version", f"must be a string, not {_type_name(rubric['version'])}")
    for s in ("a", "b"):
        answers = rubric.get(s)
        if answers is None:
            continue
        if isinstance(answers, list):  # the Parquet form: [{criterion, answer}, ...]
            answers = _answer_list(answers, f"rubric.{s}")
        if not isinstance(answers, dict):
            raise BadLine(f"rubric.{s}", f"must be an object of criterion: answer, not {_type_name(answers)}")
        for crit, ans in answers.items():
            if ans not in ("yes", "no", "na"):
                raise BadLine(f"rubric.{s}.{crit}", f'must be "yes", "no" or "na", not {ans!r}')


# --- size limits ------------------------------------------------------------------------------------------

# The fields that hold the prompt and the two responses of a pair, per format (a generic line names its
# responses by index).
_LIMIT_FIELDS = {
    "trl": ("prompt", "chosen", "rejected"),
    "hh": ("chosen", "chosen", "rejected"),
    "safe-rlhf": ("prompt", "response_0", "response_1"),
    "raw": ("prompt", "response_a", "response_b"),
}


def _over(fld: str, what: str, n: int, limit: int, setting: str) -> BadLine:
    return BadLine(fld, f"has {n:,} {what}, more than {limit:,} (the limit, {setting})")


def within_limits(fmt: str, obj: dict, pairs: list[ParsedPair], limits: FieldLimits) -> list[ParsedPair]:
    """`pairs` if the line's prompt and responses are within `limits`; else BadLine naming the field."""
    if not pairs:
        return pairs
    if fmt == "trl" and obj.get("prompt") is None:
        prompt_field = "chosen"  # implicit prompt: the conversation before chosen's last turn
    else:
        prompt_field = _LIMIT_FIELDS.get(fmt, ("prompt",))[0]
    messages = pairs[0].messages
    if len(messages) > limits.messages:
        raise _over(prompt_field, "messages", len(messages), limits.messages, "ARBITER_IMPORT_MAX_MESSAGES")
    chars = sum(len(m["content"]) for m in messages)
    if chars > limits.prompt_chars:
        raise _over(prompt_field, "characters", chars, limits.prompt_chars, "ARBITER_IMPORT_MAX_PROMPT_CHARS")
    if fmt == "generic" or (fmt == "raw" and "responses" in obj):
        texts = [
            (f"responses[{i}]", r if isinstance(r, str) else r["text"])
            for i, r in enumerate(obj["responses"])
        ]
    else:
        _, a_field, b_field = _LIMIT_FIELDS[fmt]
        texts = [(a_field, pairs[0].a_text), (b_field, pairs[0].b_text)]
    for fld, text in texts:
        if len(text) > limits.response_chars:
            raise _over(
                fld, "characters", len(text), limits.response_chars, "ARBITER_IMPORT_MAX_RESPONSE_CHARS"
            )
    return pairs


def _limited(fmt: str, parse: Callable[[dict, int, ParseContext], list[ParsedPair]]):
    def parse_within_limits(obj: dict, line: int, ctx: ParseContext) -> list[ParsedPair]:
        return within_limits(fmt, obj, parse(obj, line, ctx), ctx.limits)

    parse_within_limits.__name__ = parse.__name__
    return parse_within_limits


def _answer_list(answers: list, fld: str) -> dict:
    out = {}
    for i, entry in enumerate(answers):
        if not isinstance(entry, dict) or set(entry) != {"criterion", "answer"}:
            raise BadLine(f"{fld}[{i}]", "must be an object of criterion and answer")
        out[_string(entry["criterion"], f"{fld}[{i}].criterion")] = entry["answer"]
    return out


PARSERS: dict[str, Callable[[dict, int, ParseContext], list[ParsedPair]]] = {
    name: _limited(name, parse)
    for name, parse in (
        ("trl", parse_trl),
        ("hh", parse_hh),
        ("safe-rlhf", parse_safe_rlhf),
        ("generic", parse_generic),
        ("raw", parse_raw),
    )
}
FORMATS = tuple(PARSERS)
LABELLED = frozenset(("trl", "hh", "safe-rlhf"))
