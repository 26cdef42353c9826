"""Export then import into a new project gives back the same judgments (raw) or comparisons and labels."""

from __future__ import annotations

import pytest

from annotate.models import Judgment, JudgmentRevision
from curation import importers
from curation.canonical import as_messages
from curation.exporters import export_snapshot, prompt_text
from curation.models import SnapshotPair
from curation.snapshots import create_snapshot
from projects.models import Project
from tests.factories import add_judgment, crowd_annotator, make_comparison

CONVERSATION = [
    {"role": "user", "content": "Q1"},
    {"role": "assistant", "content": "A1"},
    {"role": "user", "content": "Q2"},
]


@pytest.fixture
def source_project(project):
    project.harm_categories = ["violence", "privacy"]
    project.save()
    x, y = crowd_annotator(project, "x"), crowd_annotator(project, "y")
    c1 = make_comparison(project, "Say hi", "Hi!", "Go away.", model_a="m1")
    c2 = make_comparison(project, CONVERSATION, "r1", "r2")
    c3 = make_comparison(project, "Empty?", "", "Something")
    jx = add_judgment(
        c1,
        x,
        preference=-2,
        helpfulness="a",
        harmlessness="a",
        a_safe=True,
        b_safe=False,
        b_harm_categories=["violence"],
        b_severity="severe",
        justification="Rude.",
    )
    JudgmentRevision.objects.create(
        judgment=jx,
        number=2,
        created_at=jx.created_at,
        preference=-3,
        choice="a",
        helpfulness="a",
        harmlessness="a",
        a_safe=True,
        b_safe=False,
        b_harm_categories=["violence"],
        b_severity="severe",
        justification="Very rude.",
    )
    Judgment.objects.filter(pk=jx.pk).update(preference=-3, justification="Very rude.", revision_count=2)
    add_judgment(
        c1,
        y,
        preference=-1,
        helpfulness="a",
        harmlessness="a",
        a_safe=True,
        b_safe=False,
        b_harm_categories=["violence"],
        b_severity="severe",
    )
    add_judgment(
        c2,
        x,
        preference=2,
        helpfulness="b",
        harmlessness="b",
        a_safe=False,
        b_safe=True,
        a_harm_categories=["privacy"],
        a_severity="minor",
    )
    add_judgment(c3, y, preference=1, helpfulness="b", harmlessness="a", a_safe=True, b_safe=True)
    return project


def _new_project(slug: str) -> Project:
    return Project.objects.create(name=slug, slug=slug, harm_categories=["violence", "privacy"])


def _revisions(project: Project) -> list[tuple]:
    rows = JudgmentRevision.objects.filter(judgment__project=project).values_list(
        "judgment__comparison__item__prompt",
        "judgment__comparison__response_a__text",
        "judgment__comparison__response_b__text",
        "judgment__annotator__name",
        "number",
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
    )
    return sorted(rows, key=repr)


def _pairs(project: Project, snapshot, *, prompt_as_text: bool = False) -> list[tuple]:
    """(prompt, chosen, rejected, chosen side safe) per pair; `prompt_as_text` gives the prompt as a format
    with a string prompt (safe-rlhf) writes it, read back as one user turn."""
    out = []
    for p in SnapshotPair.objects.filter(snapshot=snapshot).select_related(
        "comparison__item", "comparison__response_a", "comparison__response_b"
    ):
        c = p.comparison
        chosen, rejected = (c.response_a, c.response_b) if p.chosen == "a" else (c.response_b, c.response_a)
        prompt = as_messages(prompt_text(c.item.prompt)) if prompt_as_text else c.item.prompt
        out.append((repr(prompt), chosen.text, rejected.text, p.a_safe if p.chosen == "a" else p.b_safe))
    return sorted(out)


def test_raw_round_trip_keeps_judgments_and_revisions(source_project, tmp_path):
    snap = create_snapshot(project=source_project)
    result = export_snapshot(snap, tmp_path / "raw.jsonl", fmt="raw", with_names=True)
    target = _new_project("copy")
    importers.import_file(result.path, project=target, fmt="raw")
    assert _revisions(target) == _revisions(source_project)
    latest = dict(
        Judgment.objects.filter(
            project=target, annotator__name="x", comparison__response_a__text="Hi!"
        ).values_list("revision_count", "preference")
    )
    assert latest == {2: -3}


@pytest.mark.parametrize("fmt", ["trl", "hh", "safe-rlhf"])
def test_pair_formats_round_trip_keep_comparisons_and_labels(source_project, tmp_path, fmt):
    snap = create_snapshot(project=source_project)
    result = export_snapshot(snap, tmp_path / f"{fmt}.jsonl", fmt=fmt)
    target = _new_project(f"copy-{fmt.replace('-', '')}")
    importers.import_file(result.path, project=target, fmt=fmt)
    again = create_snapshot(project=target)
    # safe-rlhf prompts are strings: a conversation arrives as its transcript (all the format can represent).
    mine = _pairs(source_project, snap, prompt_as_text=fmt == "safe-rlhf")
    theirs = _pairs(target, again)
    if fmt != "safe-rlhf":  # only safe-rlhf carries safety
        mine = [r[:3] for r in mine]
        theirs = [r[:3] for r in theirs]
    assert theirs == mine
    if fmt == "safe-rlhf":
        assert sorted(
            SnapshotPair.objects.filter(snapshot=again).values_list("safer", flat=True), key=str
        ) == sorted(SnapshotPair.objects.filter(snapshot=snap).values_list("safer", flat=True), key=str)
