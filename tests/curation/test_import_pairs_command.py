from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command

from .importing import counts, fixture


@pytest.mark.django_db
def test_command_prints_each_bad_line_and_fails_without_committing(project, capsys):
    path = fixture("trl_bad.jsonl")
    with pytest.raises(CommandError, match="6 bad line"):
        call_command("import_pairs", str(path), project=project.slug, fmt="trl")
    err = capsys.readouterr().err.splitlines()
    assert err[:6] == [
        f"{path}:2: invalid JSON: {err[0].split('invalid JSON: ', 1)[1]}",
        f"{path}:3: not a JSON object (a list)",
        f"{path}:4: rejected: missing",
        f"{path}:5: rejected: the two responses are identical",
        f"{path}:7: prompt[0].role: bad role 'robot' (expected system, user or assistant)",
        f"{path}:8: margin: must be a number, not str",
    ]
    assert counts(project)["comparisons"] == 0


@pytest.mark.django_db
def test_command_with_skip_invalid_succeeds_and_prints_exact_totals(project, capsys):
    call_command(
        "import_pairs", str(fixture("trl_bad.jsonl")), "--skip-invalid", project=project.slug, fmt="trl"
    )
    out = capsys.readouterr()
    assert "trl: 8 lines, 2 good, 6 bad (skipped); committed." in out.out
    assert "2 comparisons, 2 judgments" in out.out
    assert out.err.count(str(fixture("trl_bad.jsonl"))) == 6


@pytest.mark.django_db
def test_command_json_report_and_pairs_option(project, capsys):
    call_command(
        "import_pairs",
        str(fixture("generic_good.jsonl")),
        "--json",
        "--pairs",
        "1",
        project=project.slug,
        fmt="generic",
    )
    report = json.loads(capsys.readouterr().out)
    assert report["committed"] is True and report["comparisons_created"] == 3


@pytest.mark.django_db
def test_command_refuses_an_unknown_project(db):
    with pytest.raises(CommandError, match="no project"):
        call_command("import_pairs", str(fixture("trl_good.jsonl")), project="nope", fmt="trl")
