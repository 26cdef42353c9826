"""A ranking project's agreement: the rankings' own figures (insights/rank_metrics.py) join the one computation,
so `manage.py agreement --json`, the dashboard and the API show the same numbers, equal to the pure functions
on the rankings that count (gold, source and model rankings left out; a snapshot's exclusions honoured)."""

from __future__ import annotations

import io
import json
import random

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from annotate.models import Comparison, Gold, Item, Ranking, Response
from curation import importers
from curation.canonical import as_messages, pair_key, prompt_key, text_key
from curation.dataset_card import RANKING_FIGURES, agreement_figures
from curation.exporters import card_path_for, export_snapshot
from curation.snapshots import create_snapshot
from insights import rank_metrics as R
from insights.agreement import comparison_figures, project_figures
from insights.dashboard import recompute_dashboard
from projects.api_auth import create_token
from projects.models import Annotator, Project
from tests.curation.test_ranking_import_export import ranking_rows, write
from tests.factories import crowd_annotator

pytestmark = pytest.mark.django_db


def ranking_item(project: Project, n: int, k: int) -> tuple[Item, list[int], list[int]]:
    """Item `n` with k responses and a comparison per pair; its response ids and comparison ids."""
    messages = as_messages(f"Rank answers to question {n}")
    pk = prompt_key(messages)
    item = Item.objects.create(project=project, prompt_key=pk, prompt=messages)
    responses = [
        Response.objects.create(item=item, text=f"answer {n}.{j}", text_key=text_key(f"answer {n}.{j}"))
        for j in range(k)
    ]
    comparisons = [
        Comparison.objects.create(project=project, item=item, response_a=a, response_b=b,
                                  pair_key=pair_key(pk, a.text_key, b.text_key), random_key=random.random())
        for i, a in enumerate(responses) for b in responses[i + 1 :]
    ]  # fmt: skip
    return item, [r.pk for r in responses], [c.pk for c in comparisons]


def random_tiers(rng: random.Random, ids: list[int]) -> list[list[int]]:
    order = sorted(ids, key=lambda rid: ids.index(rid) + rng.gauss(0, 1.0))
    tiers: list[list[int]] = []
    for rid in order:
        if tiers and rng.random() < 0.2:
            tiers[-1].append(rid)
        else:
            tiers.append([rid])
    return tiers


@pytest.fixture
def ranked(project):
    project.task_kind = Project.TaskKind.RANKING
    project.save()
    rng = random.Random(3)
    names = ["amy", "ben", "cat", "dan"]
    annotators = {name: crowd_annotator(project, name) for name in names}
    source = Annotator.objects.create(project=project, name="src", kind=Annotator.Kind.SOURCE)
    judge = Annotator.objects.create(project=project, name="judge", kind=Annotator.Kind.MODEL)
    now = timezone.now()
    counted = []  # (item id, annotator id, tiers) of the rankings that count
    items = []
    for n in range(24):
        item, ids, comparisons = ranking_item(project, n, rng.randint(3, 6))
        items.append((item, comparisons))
        gold_item = n in (21, 22)  # 21: its rankings are marked gold; 22: a comparison has a Gold row
        if n == 22:
            Gold.objects.create(comparison_id=comparisons[0], choice="a")
        for name in rng.sample(names, rng.randint(1, 4)):
            tiers = random_tiers(rng, ids)
            Ranking.objects.create(project=project, item=item, annotator=annotators[name], tiers=tiers,
                                   display_order=ids, is_gold=n == 21, imported=name == "dan",
                                   created_at=now, updated_at=now)  # fmt: skip
            if not gold_item:
                counted.append((item.pk, annotators[name].pk, tiers))
        for extra in (source, judge):  # never in the crowd's figures
            Ranking.objects.create(project=project, item=item, annotator=extra, tiers=[ids], display_order=ids,
                                   is_source=extra is source, created_at=now, updated_at=now)  # fmt: skip
    return project, counted, items


def expected(rows, **kwargs):
    units = sorted({item for item, _, _ in rows})
    rankings, _, _ = R.Rankings.from_tiers(sorted(rows, key=lambda r: r[:2]), units=units)
    return R.ranking_figures(rankings, **kwargs)


def test_command_dashboard_and_api_show_the_rankings_figures(ranked, researcher):
    project, counted, _ = ranked
    cache.clear()  # no dashboard figures of another test's project with the same id
    out = io.StringIO()
    call_command("agreement", "--project", project.slug, "--json", stdout=out)
    command = json.loads(out.getvalue())
    want = expected(counted)
    assert command["ranking"] == json.loads(json.dumps(want))  # digit for digit
    assert want["rankings"] == len(counted) and want["kendall_w"] is not None
    assert want["ci"]["alpha_ordinal"] is not None

    dashboard = recompute_dashboard(project.pk)
    assert dashboard["agreement"]["ranking"] == command["ranking"]
    key = create_token(user=researcher, name="figures")[1]
    api = Client().get(f"/api/projects/{project.slug}/agreement", headers={"Authorization": f"Bearer {key}"})
    assert api.status_code == 200 and api.json()["ranking"] == command["ranking"]

    page = Client()
    page.force_login(researcher)
    html = page.get(reverse("dashboard", args=[project.slug])).content.decode()
    assert "Kendall&#x27;s W" in html or "Kendall's W" in html
    assert f"<strong>{want['kendall_w']:.3f}</strong>" in html
    assert f"<strong>{want['pairwise_agreement']:.3f}</strong>" in html

    text = io.StringIO()
    call_command("agreement", "--project", project.slug, stdout=text)
    assert f"{want['alpha_ordinal']:.3f}" in text.getvalue() and "Kendall's W" in text.getvalue()


def test_a_snapshots_comparisons_and_exclusions_select_the_rankings(ranked):
    project, counted, items = ranked
    some = [cid for item, comparisons in items[:10] for cid in comparisons]
    kept = {item.pk for item, _ in items[:10]}
    imported = {a.pk for a in Annotator.objects.filter(project=project, name="dan")}
    figures = comparison_figures(project, some, exclude=["imported"], n_resamples=200)
    rows = [r for r in counted if r[0] in kept and r[1] not in imported]
    assert figures["ranking"] == expected(rows, n_resamples=200)


def test_a_pairs_project_has_no_ranking_figures(project):
    assert "ranking" not in project_figures(project, n_resamples=10)


def test_the_dataset_card_shows_the_dashboards_ranking_figures(project, tmp_path):
    project.task_kind = Project.TaskKind.RANKING
    project.harm_categories = ["violence", "privacy_violation"]
    project.save()
    importers.import_file(write(tmp_path / "r.jsonl", ranking_rows(8)), project=project, fmt="raw")
    command = project_figures(project)["ranking"]
    snapshot = create_snapshot(project=project)
    # every item keeps a pair, so the snapshot's items are the project's: the same rankings count
    assert agreement_figures(snapshot)["ranking"] == command
    card = card_path_for(export_snapshot(snapshot, tmp_path / "out.jsonl", fmt="trl").path).read_text()
    for key, title in RANKING_FIGURES:
        ci = command["ci"][key]
        assert f"| {title} | {command[key]:.3f} ({ci[0]:.3f} to {ci[1]:.3f}) |" in card
