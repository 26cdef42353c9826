"""Revising: within the window each change is a new revision and the judgment mirrors the latest."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from annotate.assignment import claim_next
from annotate.models import Judgment
from annotate.services import SubmissionRefused, revise_judgment, submit_judgment
from tests.annotate.workbench_support import answers
from tests.factories import make_comparisons

pytestmark = pytest.mark.django_db


@pytest.fixture
def judgment(project, annotator):
    make_comparisons(project, 2)
    a = claim_next(project=project, user=annotator)
    return submit_judgment(assignment=a, user=annotator, answers=answers(), submission_id="first")


def test_revision_within_the_window_is_a_new_revision_and_counts(judgment, annotator):
    revised = revise_judgment(
        judgment=judgment,
        user=annotator,
        answers=answers(preference="3", helpfulness="right"),
        submission_id="r2",
    )
    left_is_a = judgment.assignment.shown_left == "a"
    assert revised.revision_count == 2
    assert revised.preference == (3 if left_is_a else -3)
    history = list(judgment.revisions.values_list("number", "preference"))
    assert history == [(1, -2 if left_is_a else 2), (2, 3 if left_is_a else -3)]
    # The same revision sent twice is one revision.
    revise_judgment(judgment=judgment, user=annotator, answers=answers(preference="3"), submission_id="r2")
    assert judgment.revisions.count() == 2


def test_revision_after_the_window_is_refused(project, judgment, annotator):
    Judgment.objects.filter(pk=judgment.pk).update(
        created_at=timezone.now() - timedelta(hours=project.revision_window_hours, minutes=1)
    )
    judgment.refresh_from_db()
    with pytest.raises(SubmissionRefused, match="revision window"):
        revise_judgment(judgment=judgment, user=annotator, answers=answers(), submission_id="late")
    assert judgment.revisions.count() == 1


def test_revise_page_prefills_and_saves(client, project, judgment, annotator):
    client.force_login(annotator)
    history = client.get(reverse("workbench_history", args=[project.slug])).content.decode()
    url = reverse("workbench_revise", args=[project.slug, judgment.pk])
    assert url in history
    page = client.get(url).content.decode()
    assert "Left answers the question." in page  # the stored answers, shown as the annotator saw them
    resp = client.post(url, answers(preference="0", submission_id="web-r"))
    assert resp.status_code == 302
    assert Judgment.objects.get(pk=judgment.pk).preference == 0


def test_another_annotator_cannot_open_my_judgment(client, project, judgment, annotator2):
    client.force_login(annotator2)
    assert client.get(reverse("workbench_revise", args=[project.slug, judgment.pk])).status_code == 404
