"""Skipping: with a reason, the comparison returns to the pool for others, never to the skipper."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotate.assignment import claim_next
from annotate.models import Assignment
from annotate.services import AnswerError, skip_assignment
from tests.factories import make_comparisons

pytestmark = pytest.mark.django_db


def test_skipped_comparison_goes_back_to_the_pool_for_others(project, annotator, annotator2):
    project.overlap_k = 1
    project.save()
    make_comparisons(project, 1)
    a = claim_next(project=project, user=annotator)
    assert claim_next(project=project, user=annotator2) is None
    skip_assignment(assignment=a, user=annotator, reason="expertise")
    assert Assignment.objects.get(pk=a.pk).skip_reason == "Outside my expertise"
    assert claim_next(project=project, user=annotator) is None  # not back to the skipper
    other = claim_next(project=project, user=annotator2)
    assert other is not None and other.comparison_id == a.comparison_id


def test_skip_needs_a_known_reason_and_a_note_for_other(project, annotator):
    make_comparisons(project, 1)
    a = claim_next(project=project, user=annotator)
    with pytest.raises(AnswerError):
        skip_assignment(assignment=a, user=annotator, reason="bored")
    with pytest.raises(AnswerError):
        skip_assignment(assignment=a, user=annotator, reason="other", note="  ")
    assert Assignment.objects.get(pk=a.pk).status == "reserved"


def test_skip_by_htmx_shows_the_next_comparison(client, project, annotator):
    make_comparisons(project, 2)
    a = claim_next(project=project, user=annotator)
    client.force_login(annotator)
    resp = client.post(
        reverse("workbench_skip", args=[project.slug, a.pk]),
        {"reason": "other", "note": "language I do not read"},
        HTTP_HX_REQUEST="true",
    )
    nxt = Assignment.objects.get(annotator__user=annotator, status="reserved")
    assert nxt.pk != a.pk and f'data-assignment="{nxt.pk}"' in resp.content.decode()
    assert Assignment.objects.get(pk=a.pk).skip_reason == "Other: language I do not read"
