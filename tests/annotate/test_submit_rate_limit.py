"""Per-user submit rate limit: a burst goes through, the next submit gets 429 with Retry-After and a clear
message (workbench and JSON API); other users are not affected; a cache outage never blocks a submit."""

from __future__ import annotations

import uuid

import pytest
from django.core.cache import cache
from django.urls import reverse

from annotate.assignment import claim_next
from annotate.models import Judgment
from infra import best_effort
from tests.annotate.workbench_support import answers
from tests.factories import make_comparisons

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def low_rate(settings):
    settings.ARBITER_SUBMIT_RATE = 0.01  # a window of burst/rate = 300 s: no refill during the test
    settings.ARBITER_SUBMIT_BURST = 3
    cache.clear()
    yield
    if "127.0.0.1:1/" not in str(settings.CACHES):  # the cache-down test leaves nothing behind
        cache.clear()


def test_default_rate_is_well_above_a_humans_pace():
    from config import settings as config_settings

    assert config_settings.ARBITER_SUBMIT_RATE >= 5


def _api_submit(client, project, assignment_id):
    url = reverse("api:labelling_submit", args=[project.slug, assignment_id])
    payload = {"answers": answers(), "submission_id": uuid.uuid4().hex}
    return client.post(url, payload, content_type="application/json")


def test_api_submits_over_the_burst_get_429_with_retry_after(client, project, annotator, annotator2):
    make_comparisons(project, 6)
    client.force_login(annotator)
    for _ in range(3):
        assignment = claim_next(project=project, user=annotator)
        assert _api_submit(client, project, assignment.pk).status_code == 200
    assignment = claim_next(project=project, user=annotator)
    refused = _api_submit(client, project, assignment.pk)
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 301
    assert "Too many submits" in refused.json()["error"]
    assert Judgment.objects.filter(annotator__user=annotator).count() == 3
    # another user has a bucket of their own
    client.force_login(annotator2)
    other = claim_next(project=project, user=annotator2)
    assert _api_submit(client, project, other.pk).status_code == 200


def test_workbench_submit_over_the_burst_gets_429(client, project, annotator):
    make_comparisons(project, 5)
    client.force_login(annotator)
    statuses = []
    for _ in range(4):
        assignment = claim_next(project=project, user=annotator)
        url = reverse("workbench_submit", args=[project.slug, assignment.pk])
        response = client.post(url, {**answers(), "submission_id": uuid.uuid4().hex})
        statuses.append(response.status_code)
    assert 429 not in statuses[:3], statuses
    assert statuses[3] == 429, statuses
    assert "Too many submits" in response.content.decode()
    assert response["Retry-After"].isdigit()


def test_submit_goes_through_when_the_cache_is_down(client, project, annotator, settings, caplog):
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",  # the shipped backend, pointed at a closed port
            "LOCATION": "redis://127.0.0.1:1/0",
        }
    }
    best_effort.CACHE.reset()  # a fresh process: the first failure is logged
    make_comparisons(project, 1)
    client.force_login(annotator)
    assignment = claim_next(project=project, user=annotator)
    assert _api_submit(client, project, assignment.pk).status_code == 200  # counted in the process instead
    assert "cache (Redis) unavailable (submit rate limit" in caplog.text
