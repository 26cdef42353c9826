"""Drafts: saved with a version, returned after a reload, and an old tab cannot overwrite a newer one."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from annotate.assignment import claim_next
from annotate.models import Draft
from annotate.services import StaleDraft, save_draft, submit_judgment
from tests.annotate.workbench_support import answers
from tests.factories import make_comparisons

pytestmark = pytest.mark.django_db


@pytest.fixture
def assignment(project, annotator):
    make_comparisons(project, 2)
    return claim_next(project=project, user=annotator)


def post_draft(client, project, assignment, data, version):
    url = reverse("workbench_draft", args=[project.slug, assignment.pk])
    return client.post(url, json.dumps({"data": data, "version": version}), content_type="application/json")


def test_draft_comes_back_after_a_reload(client, project, annotator, assignment):
    client.force_login(annotator)
    resp = post_draft(client, project, assignment, {"preference": "2", "justification": "half done"}, 0)
    assert resp.json() == {"version": 1}
    page = client.get(reverse("workbench", args=[project.slug])).content.decode()
    assert f'data-assignment="{assignment.pk}"' in page
    assert 'data-draft-version="1"' in page
    assert "half done" in page  # in the draft-data JSON the script applies to the form


def test_an_old_tab_cannot_overwrite_a_newer_draft(client, project, annotator, assignment):
    client.force_login(annotator)
    assert post_draft(client, project, assignment, {"preference": "1"}, 0).status_code == 200  # tab 1
    stale = post_draft(client, project, assignment, {"preference": "3"}, 0)  # tab 2 started from 0
    assert stale.status_code == 409
    assert stale.json()["version"] == 1
    assert Draft.objects.get(assignment=assignment).data == {"preference": "1"}


def test_stale_draft_version_is_refused_by_the_service(annotator, assignment):
    assert save_draft(assignment=assignment, user=annotator, data={"a": 1}, version=0) == 1
    with pytest.raises(StaleDraft):
        save_draft(assignment=assignment, user=annotator, data={"a": 2}, version=0)


def test_submit_from_an_old_tab_over_a_newer_draft_is_refused(annotator, assignment):
    save_draft(assignment=assignment, user=annotator, data={"a": 1}, version=0)
    save_draft(assignment=assignment, user=annotator, data={"a": 2}, version=1)
    with pytest.raises(StaleDraft):
        submit_judgment(
            assignment=assignment, user=annotator, answers=answers(), submission_id="o", draft_version=1
        )
    j = submit_judgment(
        assignment=assignment, user=annotator, answers=answers(), submission_id="n", draft_version=2
    )
    assert j.pk and not Draft.objects.filter(assignment=assignment).exists()


def test_malformed_draft_is_refused_with_a_clear_error(client, project, annotator, assignment):
    client.force_login(annotator)
    url = reverse("workbench_draft", args=[project.slug, assignment.pk])
    resp = client.post(url, "not json", content_type="application/json")
    assert resp.status_code == 400 and "version" in resp.json()["error"]


def test_another_annotators_draft_endpoint_is_404(client, project, annotator2, assignment):
    client.force_login(annotator2)
    assert post_draft(client, project, assignment, {"x": 1}, 0).status_code == 404


def test_a_tabs_newest_save_wins_whatever_order_its_saves_land_in(annotator, assignment):
    """A reload's own save may land before the save its page sent while unloading (same tab, older seq)."""
    assert save_draft(assignment=assignment, user=annotator, data={"p": "1"}, version=0, tab="t1", seq=1) == 1
    # The reloaded page (version 1 known, its newest change is seq 3) saves first ...
    assert save_draft(assignment=assignment, user=annotator, data={"p": "3"}, version=1, tab="t1", seq=3) == 2
    # ... then the unloading page's save (seq 2, version 1) lands: ignored, no conflict.
    assert save_draft(assignment=assignment, user=annotator, data={"p": "2"}, version=1, tab="t1", seq=2) == 2
    assert Draft.objects.get(assignment=assignment).data == {"p": "3", "_tab": "t1", "_seq": 3}
    # Another tab that started from version 1 still conflicts.
    with pytest.raises(StaleDraft):
        save_draft(assignment=assignment, user=annotator, data={"p": "9"}, version=1, tab="t2", seq=9)
    # The same tab submitting from the older version: its own newer draft is no conflict; another tab's is.
    submit = {"assignment": assignment, "user": annotator, "answers": answers(), "draft_version": 1}
    with pytest.raises(StaleDraft):
        submit_judgment(**submit, submission_id="x", draft_tab="t2")
    assert submit_judgment(**submit, submission_id="y", draft_tab="t1").pk
