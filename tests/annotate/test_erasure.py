"""erase_annotator removes one person's name and free text everywhere; their votes stay, anonymous."""

from __future__ import annotations

from io import StringIO

import pytest
from django.apps import apps
from django.core.management import CommandError, call_command
from django.db import models
from django.db.models import TextField
from django.db.models.functions import Cast

from annotate.models import Assignment, Draft, Judgment, JudgmentRevision
from curation.exporters import export_snapshot
from curation.snapshots import create_snapshot
from projects.models import Annotator, AuditEvent, Membership
from tests.conftest import make_user
from tests.factories import add_judgment, crowd_annotator, make_comparison

NAME = "zelda_quark"
SECRETS = (NAME, "Zephyr secret one", "Zephyr secret two", "Zephyr skip", "Zephyr draft")


@pytest.fixture
def person(project):
    user = make_user(NAME)
    Membership.objects.create(user=user, project=project, role="annotator")
    me = crowd_annotator(project, NAME, user=user)
    other = crowd_annotator(project, "someone")
    c1 = make_comparison(project, "p1", "a1", "b1")
    c2 = make_comparison(project, "p2", "a2", "b2")
    j = add_judgment(c1, me, preference=-2, justification="Zephyr secret one")
    JudgmentRevision.objects.create(
        judgment=j,
        number=2,
        created_at=j.created_at,
        preference=-3,
        choice="a",
        justification="Zephyr secret two",
    )
    Judgment.objects.filter(pk=j.pk).update(
        preference=-3, justification="Zephyr secret two", revision_count=2
    )
    add_judgment(c1, other, preference=-1, justification="kept")
    Assignment.objects.create(
        project=project, comparison=c2, annotator=me, status="skipped", skip_reason="Zephyr skip"
    )
    open_one = Assignment.objects.create(project=project, comparison=c1, annotator=other)
    Draft.objects.create(assignment=open_one, data={"justification": "not theirs"})
    mine = Assignment.objects.get(annotator=me)
    mine.status = "reserved"
    mine.save()
    Draft.objects.create(assignment=mine, data={"justification": "Zephyr draft"})
    AuditEvent.objects.create(
        actor=user, actor_name=NAME, action="judgment.submit", project=project, data={"by": NAME}
    )
    return project, user, me


def text_hits(secret: str) -> list[str]:
    """Every text, char and JSON column of Arbiter's own tables that contains `secret`."""
    hits = []
    for label in ("projects", "annotate", "rubrics", "insights", "curation", "rewardtrain"):
        for model in apps.get_app_config(label).get_models():
            for field in model._meta.concrete_fields:
                if isinstance(field, (models.CharField, models.TextField, models.JSONField)):
                    qs = model.objects.annotate(_t=Cast(field.name, TextField())).filter(_t__contains=secret)
                    hits += [f"{model.__name__}.{field.name}#{pk}" for pk in qs.values_list("pk", flat=True)]
    return hits


def test_the_fixture_holds_every_secret(person):
    for secret in SECRETS:
        assert text_hits(secret), secret


def test_erasure_leaves_no_trace_and_keeps_the_votes(person, tmp_path):
    project, user, me = person
    before = list(
        Judgment.objects.filter(annotator=me).values_list("comparison_id", "preference", "revision_count")
    )
    out = StringIO()
    call_command("erase_annotator", "--project", project.slug, "--user", NAME, stdout=out)
    for secret in SECRETS:
        assert text_hits(secret) == [], secret
    me.refresh_from_db()
    assert me.erased and me.user is None and me.name.startswith("erased-")
    assert me.name in out.getvalue()
    assert (
        list(
            Judgment.objects.filter(annotator=me).values_list("comparison_id", "preference", "revision_count")
        )
        == before
    )
    assert JudgmentRevision.objects.filter(judgment__annotator=me).count() == 2
    assert Judgment.objects.get(annotator__name="someone").justification == "kept"
    assert Draft.objects.count() == 1
    assert not Membership.objects.filter(user=user, project=project).exists()
    event = AuditEvent.objects.get(action="annotator.erase")
    assert event.target_id == str(me.pk) and event.data["revisions"] == 2
    snapshot = create_snapshot(project=project)
    result = export_snapshot(snapshot, tmp_path / "raw.jsonl", fmt="raw", with_names=True)
    text = result.path.read_text()
    assert me.name in text and all(s not in text for s in SECRETS)


def test_erasure_by_annotator_name_and_errors(person):
    project, _, _ = person
    call_command("erase_annotator", "--project", project.slug, "--annotator", "someone", stdout=StringIO())
    assert Annotator.objects.get(pk=Annotator.objects.filter(erased=True).get().pk).name.startswith("erased-")
    with pytest.raises(CommandError, match="no annotator"):
        call_command("erase_annotator", "--project", project.slug, "--annotator", "nobody")
    with pytest.raises(CommandError, match="no project"):
        call_command("erase_annotator", "--project", "nope", "--user", NAME)
