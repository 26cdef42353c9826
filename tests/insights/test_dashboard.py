"""The project dashboard: researcher-only, reads cached figures, recomputed in the background, live socket."""

from __future__ import annotations

import json
import time

import pytest
from django.core.cache import cache
from django.test import Client
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from annotate.models import Gold
from config.celery import ensure_broker_folders
from insights.dashboard import (
    annotator_set_flagged,
    annotator_unpause,
    cached_dashboard,
    figures_key,
    mark_dashboard_dirty,
    notify_dashboard,
    recompute_dashboard,
    request_recompute,
    scheduled_key,
)
from projects.models import Annotator, AuditEvent, Membership, Project
from tests.backends import require_redis
from tests.conftest import login
from tests.factories import add_judgment, crowd_annotator, make_comparison, make_comparisons
from tests.servers import start_asgi, start_worker


@pytest.fixture(autouse=True)
def clean_cache():
    ensure_broker_folders()  # the embedded broker is a folder; `serve` makes it in production
    cache.clear()
    yield
    cache.clear()


def votes(project, n=6):
    people = [crowd_annotator(project, name) for name in ("ada", "bo", "cy")]
    for i, c in enumerate(make_comparisons(project, n)):
        for j, person in enumerate(people):
            add_judgment(c, person, preference=[2, 1, -1][(i + j) % 3], time_spent_ms=5000 + 100 * j)
    return people


def url(project):
    return f"/p/{project.slug}/dashboard/"


@pytest.mark.django_db
def test_annotators_and_outsiders_get_404_and_anonymous_users_the_login_page(
    client, project, annotator, outsider
):
    assert client.get(url(project)).status_code == 302
    assert login(client, annotator).get(url(project)).status_code == 404
    assert login(client, outsider).get(url(project)).status_code == 404


@pytest.mark.django_db
def test_page_says_figures_are_being_computed_until_the_background_run_caches_them(
    client, project, researcher
):
    votes(project)
    page = login(client, researcher).get(url(project))
    assert page.status_code == 200
    assert b"being computed" in page.content
    assert cache.get(scheduled_key(project.pk)) is not None  # the page asked for a recompute
    recompute_dashboard(project.pk)
    page = client.get(url(project)).content.decode()
    for text in ("Agreement", "overall", "helpfulness", "harm:violence", "ada", "bo", "cy", "<svg"):
        assert text in page
    assert "being computed" not in page


@pytest.mark.django_db
def test_htmx_refresh_renders_only_the_figures_partial(client, project, admin_user):
    votes(project)
    recompute_dashboard(project.pk)
    part = login(client, admin_user).get(url(project), HTTP_HX_REQUEST="true").content.decode()
    assert 'id="dashboard-figures"' in part and "<html" not in part
    assert "every 10s" in part or "refresh" in part


@pytest.mark.django_db
def test_cached_figures_hold_progress_throughput_and_agreement(project):
    votes(project, n=4)
    gold = make_comparison(project, "gold", "x", "y")
    Gold.objects.create(comparison=gold, choice="a")
    figures = recompute_dashboard(project.pk)
    assert cached_dashboard(project) == figures
    p = figures["progress"]
    assert (p["comparisons"], p["complete"], p["crowd_judgments"], p["gold_comparisons"]) == (4, 4, 12, 1)
    assert sum(n for _, n in figures["throughput"]) == 12
    assert figures["agreement"]["questions"]["overall"]["alpha_nominal"] is not None


@pytest.mark.django_db
def test_recomputes_are_debounced_one_scheduled_run_per_project(project):
    assert request_recompute(project.pk) is True
    assert request_recompute(project.pk) is False  # already scheduled: writes in a burst add nothing
    recompute_dashboard(project.pk)  # the run clears the mark when it starts
    assert request_recompute(project.pk) is True


@pytest.mark.django_db
def test_low_gold_accuracy_pauses_and_flags_an_annotator_unless_a_researcher_decided(
    project, annotator, researcher
):
    project.auto_pause_gold_threshold = 0.6
    project.auto_pause_min_gold = 4
    project.save()
    me = crowd_annotator(project, "ann", user=annotator)
    good = crowd_annotator(project, "good")
    for i in range(5):
        c = make_comparison(project, f"gold {i}", "x", "y")
        Gold.objects.create(comparison=c, choice="a")
        add_judgment(c, me, choice="b" if i < 3 else "a")  # 2 of 5 right
        add_judgment(c, good, choice="a")
    recompute_dashboard(project.pk)
    membership = Membership.objects.get(user=annotator, project=project)
    assert "Gold accuracy 40%" in membership.paused_reason
    me.refresh_from_db()
    good.refresh_from_db()
    assert me.flagged and not good.flagged
    assert AuditEvent.objects.filter(action="annotator.auto_paused", target_id=str(me.pk)).exists()
    row = next(r for r in cached_dashboard(project)["agreement"]["per_annotator"] if r["annotator"] == "ann")
    assert row["flagged"] and row["low_gold_accuracy"] and row["paused_reason"]
    # A researcher clears both; the next run leaves the decision alone.
    annotator_set_flagged(annotator=me, flagged=False, user=researcher)
    assert annotator_unpause(annotator=me, user=researcher)
    recompute_dashboard(project.pk)
    me.refresh_from_db()
    membership.refresh_from_db()
    assert not me.flagged and membership.paused_reason == ""


@pytest.mark.django_db
def test_suspiciously_fast_annotator_is_flagged_automatically(project):
    slow = [crowd_annotator(project, f"slow{i}") for i in range(3)]
    fast = crowd_annotator(project, "fast")
    for c in make_comparisons(project, 12):
        for person in slow:
            add_judgment(c, person, preference=1, time_spent_ms=30_000)
        add_judgment(c, fast, preference=1, time_spent_ms=2_000)
    recompute_dashboard(project.pk)
    assert set(Annotator.objects.filter(project=project, flagged=True).values_list("name", flat=True)) == {
        "fast"
    }
    event = AuditEvent.objects.get(action="annotator.auto_flagged")
    assert event.data["reasons"] == ["too_fast"]


@pytest.mark.django_db(transaction=True)
def test_a_judgment_marks_the_dashboard_dirty_and_a_real_worker_recomputes_it(project, tmp_path):
    votes(project, n=3)
    worker = start_worker(tmp_path, queues="cpu")
    try:
        mark_dashboard_dirty(project.pk)  # outside a transaction: schedules at once
        deadline = time.monotonic() + 60
        while cache.get(figures_key(project.pk)) is None and time.monotonic() < deadline:
            time.sleep(0.3)
        figures = cache.get(figures_key(project.pk))
        assert figures is not None, worker.output()
        assert figures["agreement"]["judgments"] == 9
    finally:
        worker.stop()


def _socket(base_url: str, slug: str, client, user):
    client.force_login(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    return connect(
        base_url.replace("http://", "ws://") + f"/ws/projects/{slug}/dashboard/",
        additional_headers={"Cookie": cookie, "Origin": base_url},
        open_timeout=10,
    )


@pytest.mark.django_db(transaction=True)
def test_socket_tells_researchers_when_fresh_figures_are_cached_and_refuses_others(
    project, researcher, annotator, client, tmp_path
):
    require_redis()  # the server and this test are separate processes: they meet on Redis
    server, base_url = start_asgi(tmp_path)
    try:
        with pytest.raises(InvalidStatus), _socket(base_url, project.slug, Client(), annotator):
            pass
        with _socket(base_url, project.slug, client, researcher) as socket:
            time.sleep(0.3)  # the subscription reaches Redis
            notify_dashboard(project.pk, "2026-01-01T00:00:00")
            message = json.loads(socket.recv(timeout=10))
        assert message == {"type": "dashboard.updated", "computed_at": "2026-01-01T00:00:00"}
    finally:
        server.stop()


@pytest.mark.django_db
def test_researcher_can_ask_for_a_recompute_and_annotators_cannot(client, project, researcher, annotator):
    assert login(client, annotator).post(f"/p/{project.slug}/dashboard/recompute/").status_code == 404
    assert cache.get(scheduled_key(project.pk)) is None
    assert login(client, researcher).post(f"/p/{project.slug}/dashboard/recompute/").status_code == 302
    assert cache.get(scheduled_key(project.pk)) is not None


@pytest.mark.django_db
def test_project_page_links_the_dashboards_for_researchers_only(client, project, researcher, annotator):
    assert url(project) in login(client, researcher).get(f"/p/{project.slug}/").content.decode()
    assert url(project) not in login(client, annotator).get(f"/p/{project.slug}/").content.decode()


@pytest.mark.django_db
def test_a_rater_with_none_of_five_gold_answers_right_is_flagged_by_default(project):
    """The default settings flag 0 of 5 (a gold-accuracy flag that waited for 10 answers missed it)."""
    fresh = Project.objects.create(name="Defaults", slug="defaults")
    wrong = crowd_annotator(fresh, "wrong")
    right = crowd_annotator(fresh, "right")
    for i in range(5):
        c = make_comparison(fresh, f"gold {i}", "x", "y")
        Gold.objects.create(comparison=c, choice="a")
        add_judgment(c, wrong, choice="b")
        add_judgment(c, right, choice="a")
    recompute_dashboard(fresh.pk)
    rows = {r["annotator"]: r for r in cached_dashboard(fresh)["agreement"]["per_annotator"]}
    assert rows["wrong"]["low_gold_accuracy"] and rows["wrong"]["flagged"]
    assert not rows["right"]["low_gold_accuracy"]
