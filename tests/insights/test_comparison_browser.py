"""The comparison browser: search and filters, and one comparison with its votes, revisions, rubric
answers and model scores."""

from __future__ import annotations

import re

import pytest
from django.utils import timezone

from annotate.models import Assignment, Gold, JudgmentRevision
from curation.models import DatasetSnapshot
from rewardtrain.models import ModelVersion, Score, TrainingRun
from rubrics.models import CriterionAnswer
from tests.conftest import login
from tests.factories import add_judgment, crowd_annotator, make_comparison


def listed(client, project, **params) -> set[int]:
    page = client.get(f"/p/{project.slug}/comparisons/", params).content.decode()
    return {int(m) for m in re.findall(r'name="ids" value="(\d+)"', page)}


@pytest.fixture
def corpus(project):
    x, y, z = (crowd_annotator(project, n) for n in ("x", "y", "z"))
    unanimous = make_comparison(project, "How do I bake bread?", "Knead, proof, bake.", "Buy some.")
    split = make_comparison(project, "Tell me a joke", "Why did the chicken…", "No.")
    even = make_comparison(project, "Capital of France?", "Paris", "Lyon")
    gold = make_comparison(project, "2 + 2?", "4", "5")
    Gold.objects.create(comparison=gold, choice="a")
    for person in (x, y, z):
        add_judgment(unanimous, person, preference=-2)
    add_judgment(split, x, preference=-1)
    add_judgment(split, y, preference=2)
    add_judgment(split, z, preference=1)
    add_judgment(even, x, preference=-1)
    add_judgment(even, y, preference=1)
    Assignment.objects.create(
        project=project, comparison=even, annotator=z, status="skipped", skip_reason="unsure"
    )
    return {"unanimous": unanimous, "split": split, "even": even, "gold": gold, "x": x, "z": z}


def active_model(project):
    snapshot = DatasetSnapshot.objects.create(project=project, content_hash="0" * 64)
    run = TrainingRun.objects.create(project=project, snapshot=snapshot, base_model="tiny")
    return ModelVersion.objects.create(
        run=run, project=project, path="/m", snapshot_hash="0" * 64, is_active=True
    )


@pytest.mark.django_db
def test_search_and_filters(client, project, researcher, corpus):
    login(client, researcher)
    ids = {k: v.pk for k, v in corpus.items()}
    assert listed(client, project) == {ids["unanimous"], ids["split"], ids["even"], ids["gold"]}
    assert listed(client, project, q="bread") == {ids["unanimous"]}
    assert listed(client, project, q="PARIS") == {ids["even"]}  # responses too, case-insensitive
    assert listed(client, project, annotator=ids["z"]) == {ids["unanimous"], ids["split"]}
    assert listed(client, project, agreement="unanimous") == {ids["unanimous"]}
    assert listed(client, project, agreement="disagree") == {ids["split"], ids["even"]}
    assert listed(client, project, agreement="no_consensus") == {ids["even"], ids["gold"]}
    assert listed(client, project, gold="yes") == {ids["gold"]}
    assert listed(client, project, skipped="yes") == {ids["even"]}


@pytest.mark.django_db
def test_model_disagreement_filter_uses_the_active_reward_model(client, project, researcher, corpus):
    model = active_model(project)
    for comparison, (ra, rb) in ((corpus["unanimous"], (0.1, 2.0)), (corpus["split"], (0.0, 1.0))):
        Score.objects.create(model_version=model, response=comparison.response_a, value=ra)
        Score.objects.create(model_version=model, response=comparison.response_b, value=rb)
    login(client, researcher)
    # Humans chose A on `unanimous` but the model prefers B; on `split` both prefer B.
    assert listed(client, project, model="disagree") == {corpus["unanimous"].pk}


@pytest.mark.django_db
def test_comparison_page_shows_votes_revisions_rubric_answers_and_model_scores(
    client, project, researcher, corpus
):
    c = corpus["split"]
    j = c.judgments.get(annotator=corpus["x"])
    j.justification = "A at least tries to be funny."
    j.save()
    rev2 = JudgmentRevision.objects.create(
        judgment=j, number=2, preference=-3, choice="a", created_at=timezone.now()
    )
    CriterionAnswer.objects.create(revision=rev2, side="a", criterion_key="is-funny", answer="yes")
    model = active_model(project)
    Score.objects.create(model_version=model, response=c.response_a, value=-0.25)
    Score.objects.create(model_version=model, response=c.response_b, value=1.5)
    page = login(client, researcher).get(f"/p/{project.slug}/comparisons/{c.pk}/").content.decode()
    for text in (
        "Tell me a joke",
        "Why did the chicken",
        "A at least tries to be funny.",
        "#2",
        "is-funny: yes",
    ):
        assert text in page
    assert "-0.250" in page and "1.500" in page and "1.750" in page  # scores and r(B) − r(A)
    assert "x" in page and "y" in page


@pytest.mark.django_db
def test_data_from_the_import_never_reaches_the_page_as_html(client, project, researcher):
    c = make_comparison(project, "<script>alert(1)</script>", "<img src=x onerror=alert(2)>", "ok")
    add_judgment(c, crowd_annotator(project, "<b>mallory</b>"), preference=1, justification="<i>hi</i>")
    login(client, researcher)
    for url in (f"/p/{project.slug}/comparisons/", f"/p/{project.slug}/comparisons/{c.pk}/"):
        page = client.get(url).content.decode()
        assert "<script>alert(1)" not in page and "<img src=x" not in page and "<b>mallory" not in page


@pytest.mark.django_db
def test_annotators_and_outsiders_get_404(client, project, annotator, outsider, corpus):
    for user in (annotator, outsider):
        login(client, user)
        assert client.get(f"/p/{project.slug}/comparisons/").status_code == 404
        assert client.get(f"/p/{project.slug}/comparisons/{corpus['split'].pk}/").status_code == 404


@pytest.mark.django_db
def test_without_a_registered_score_source_the_browser_shows_no_model_scores(
    client, project, researcher, corpus, monkeypatch
):
    """insights knows the model side only through `model_scores`' registry: with nothing registered (an app
    that scores responses is not installed) the pages still answer and the model filter matches nothing."""
    from annotate import model_scores

    model = active_model(project)
    comparison = corpus["unanimous"]
    Score.objects.create(model_version=model, response=comparison.response_a, value=1.0)
    Score.objects.create(model_version=model, response=comparison.response_b, value=2.0)
    login(client, researcher)
    assert listed(client, project, model="disagree") == {comparison.pk}
    monkeypatch.setattr(model_scores, "registered", [])
    assert listed(client, project, model="disagree") == set()
    page = client.get(f"/p/{project.slug}/comparisons/{comparison.pk}/").content.decode()
    assert "2.000" not in page
