"""An annotator's page: their figures, gold answers and recent work; a researcher flags or unpauses them."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from annotate.models import Gold
from config.celery import ensure_broker_folders
from insights.dashboard import recompute_dashboard
from projects.models import Annotator, AuditEvent, Membership
from tests.conftest import login
from tests.factories import add_judgment, crowd_annotator, make_comparisons


@pytest.fixture(autouse=True)
def clean_cache():
    ensure_broker_folders()  # flagging schedules a recompute; the embedded broker is a folder
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def worker_bee(project, annotator):
    me = crowd_annotator(project, "ann", user=annotator)
    other = crowd_annotator(project, "other")
    comparisons = make_comparisons(project, 4)
    Gold.objects.create(comparison=comparisons[0], choice="a")
    for c in comparisons:
        add_judgment(c, me, preference=-1, time_spent_ms=4_000, shown_left="a")
        add_judgment(c, other, preference=-2, time_spent_ms=9_000)
    return me


@pytest.mark.django_db
def test_page_shows_cached_figures_gold_answers_and_recent_judgments(client, project, researcher, worker_bee):
    recompute_dashboard(project.pk)
    page = login(client, researcher).get(f"/p/{project.slug}/annotators/{worker_bee.pk}/").content.decode()
    assert "ann" in page and "gold accuracy" in page
    assert "1.000" in page  # gold accuracy and left bias: every non-tie win was the left side
    assert "Seconds per judgment" in page and "<svg" in page
    assert page.count('class="tag">right</span>') == 1


@pytest.mark.django_db
def test_researcher_flags_and_clears_an_annotator(client, project, researcher, worker_bee):
    url = f"/p/{project.slug}/annotators/{worker_bee.pk}/flag/"
    login(client, researcher)
    client.post(url, {"flagged": "1", "reason": "copy-paste justifications"})
    assert Annotator.objects.get(pk=worker_bee.pk).flagged
    client.post(url, {"flagged": "0"})
    assert not Annotator.objects.get(pk=worker_bee.pk).flagged
    events = list(AuditEvent.objects.filter(action="annotator.flag").order_by("created_at", "id"))
    assert [e.data["flagged"] for e in events] == [True, False]
    assert events[0].data["reason"] == "copy-paste justifications" and events[0].actor == researcher


@pytest.mark.django_db
def test_researcher_unpauses_a_paused_annotator(client, project, researcher, annotator, worker_bee):
    Membership.objects.filter(user=annotator, project=project).update(paused_reason="Gold accuracy 40%")
    login(client, researcher)
    assert (
        "Gold accuracy 40%" in client.get(f"/p/{project.slug}/annotators/{worker_bee.pk}/").content.decode()
    )
    client.post(f"/p/{project.slug}/annotators/{worker_bee.pk}/unpause/")
    assert Membership.objects.get(user=annotator, project=project).paused_reason == ""
    assert AuditEvent.objects.filter(action="annotator.unpaused", actor=researcher).exists()


@pytest.mark.django_db
def test_annotators_and_outsiders_get_404(client, project, annotator, outsider, worker_bee, other_project):
    for user in (annotator, outsider):
        login(client, user)
        assert client.get(f"/p/{project.slug}/annotators/{worker_bee.pk}/").status_code == 404
        assert (
            client.post(f"/p/{project.slug}/annotators/{worker_bee.pk}/flag/", {"flagged": "1"}).status_code
            == 404
        )
    assert not Annotator.objects.get(pk=worker_bee.pk).flagged
    # An annotator of another project is not reachable through this one's URL.
    stranger = crowd_annotator(other_project, "far away")
    login(client, outsider)
    assert client.get(f"/p/{project.slug}/annotators/{stranger.pk}/").status_code == 404
