"""Rubric rewards: the fit recovers known weights, cross-validation never splits an item, fits are immutable
lineage, the Celery job, the `reward_terms` column of `trl` exports, the policy-side function, and the page."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import orjson
import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.test import Client

from curation.exporters import ExportError, check_export_options, export_snapshot, run_export_job
from curation.models import ExportJob
from curation.triggers import PURGE_SQL
from projects.api_auth import create_token
from projects.models import AuditEvent
from rewardtrain import rubric_fit, tasks
from rewardtrain.models import LineageError, RubricRewardFit, RubricRewardJob
from rewardtrain.rubric_reward import (
    RubricRewardError,
    fit_data,
    fit_parameters,
    fit_rubric_reward,
    run_fit_job,
    start_fit_job,
)
from rewardtrain.rubric_reward_fn import RubricReward, criterion_value, preference_probability
from rubrics.services import draft_from
from tests.conftest import login
from tests.rewardtrain.rubric_fixture import REALISTIC, Spec, build

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def clean_cache():
    cache.clear()
    yield
    cache.clear()


FAST = {"n_resamples": 200, "n_weight_resamples": 20}


def simulate(
    n: int, w: np.ndarray, w0: float | None, *, per_item: int = 3, seed: int = 0
) -> rubric_fit.FitData:
    """Pairs whose choice is drawn from σ(w·Δv + w0·Δr), with binary criterion values."""
    rng = np.random.default_rng(seed)
    k = w.size
    xa = (rng.random((n, k)) < 0.5).astype(float)
    xb = (rng.random((n, k)) < 0.5).astype(float)
    ra, rb = rng.normal(size=n), rng.normal(size=n)
    z = (xa - xb) @ w + (w0 or 0.0) * (ra - rb)
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(np.int64)
    return rubric_fit.FitData(
        keys=[f"c{i}" for i in range(k)],
        xa=xa,
        xb=xb,
        y=y,
        groups=np.arange(n) // per_item,
        hand_a=xa.sum(axis=1),
        hand_b=xb.sum(axis=1),
        ra=ra if w0 is not None else None,
        rb=rb if w0 is not None else None,
    )


# --- the fit on plain arrays ----------------------------------------------------------------------------------


def test_fit_recovers_known_weights_with_and_without_the_model_margin():
    w = np.array([2.0, 1.0, 0.0, -1.5])
    data = simulate(6000, w, 0.8, seed=1)
    out = rubric_fit.evaluate(data, c=100.0, **FAST)
    got = {r["key"]: r["weight"] for r in out["combined_weights"]}
    assert [got[f"c{i}"] for i in range(4)] == pytest.approx(w.tolist(), abs=0.15)
    assert got["model"] == pytest.approx(0.8, abs=0.08)
    for row, truth in zip(out["combined_weights"], [*w, 0.8], strict=True):
        assert row["ci"][0] - 0.05 <= truth <= row["ci"][1] + 0.05  # the interval covers the truth (± slack)
    alone = rubric_fit.evaluate(simulate(6000, w, None, seed=2), c=100.0, **FAST)
    assert [r["weight"] for r in alone["weights"]] == pytest.approx(w.tolist(), abs=0.15)
    assert alone["combined_weights"] is None and "model" not in alone["accuracy"]


def test_more_regularisation_shrinks_the_weights():
    data = simulate(600, np.array([2.0, -1.0]), None, seed=3)
    loose = rubric_fit.fit_weights(rubric_fit.features(data, np.zeros(2), with_model=False), data.y, c=100.0)
    tight = rubric_fit.fit_weights(rubric_fit.features(data, np.zeros(2), with_model=False), data.y, c=0.01)
    assert np.all(np.abs(tight) < np.abs(loose) / 3)


def test_swapping_sides_flips_nothing_but_signs():
    """No intercept: a pair entered as (B, A) with the opposite choice gives the same fit."""
    data = simulate(500, np.array([1.0, -0.5]), None, seed=4)
    x = rubric_fit.features(data, np.zeros(2), with_model=False)
    flip = np.arange(data.n) % 2 == 1
    x2, y2 = np.where(flip[:, None], -x, x), np.where(flip, 1 - data.y, data.y)
    assert rubric_fit.fit_weights(x, data.y) == pytest.approx(rubric_fit.fit_weights(x2, y2), abs=1e-5)


def test_every_choice_for_the_canonical_a_still_fits():
    data = simulate(200, np.array([1.0]), None, seed=5)
    x = rubric_fit.features(data, np.zeros(1), with_model=False)
    x = np.where(data.y[:, None] == 1, x, -x)  # reorient: the chosen side is always A
    assert rubric_fit.fit_weights(x, np.ones(data.n, dtype=np.int64))[0] > 0


def test_cross_validation_never_mixes_items_between_folds():
    rng = np.random.default_rng(6)
    groups = rng.integers(0, 37, size=400)  # items with 1 to ~20 pairs each, shuffled
    folds = rubric_fit.group_folds(groups, 5)
    tested = np.concatenate([test for _, test in folds])
    assert sorted(tested.tolist()) == list(range(400))  # every pair is tested exactly once
    for train, test in folds:
        assert not set(groups[train]) & set(groups[test])
        assert sorted(np.concatenate([train, test]).tolist()) == list(range(400))
    out = rubric_fit.evaluate(simulate(300, np.array([1.0, 0.5]), 0.5, per_item=4, seed=7), **FAST)
    assert [f["shared_items"] for f in out["folds"]] == [0] * 5
    assert sum(f["test_items"] for f in out["folds"]) == out["items"] == 75


def test_too_little_data_is_a_clear_error():
    one_item = simulate(6, np.array([1.0]), None, per_item=6)
    with pytest.raises(rubric_fit.FitError, match="at least 2 items"):
        rubric_fit.evaluate(one_item)
    with pytest.raises(rubric_fit.FitError, match="at least 2 pairs"):
        rubric_fit.evaluate(simulate(1, np.array([1.0]), None))


def test_fill_values_and_ties_count_half():
    xa = np.array([[1.0, np.nan], [0.0, np.nan]])
    xb = np.array([[np.nan, np.nan], [1.0, np.nan]])
    assert rubric_fit.fill_values(xa, xb).tolist() == [pytest.approx(2 / 3), 0.5]
    assert rubric_fit.correct(np.array([1.0, -1.0, 0.0, np.nan]), np.array([1, 1, 0, 0])).tolist() == [
        1,
        0,
        0.5,
        0.5,
    ]


# --- from the database --------------------------------------------------------------------------------------

EXACT = (
    Spec("e", "Essential", "essential", 1.5, 0.5, 0.0),
    Spec("i", "Important", "important", 0.8, 0.5, 0.0),
    Spec("p", "Pitfall", "pitfall", -1.2, 0.4, 0.0),
)


def test_fit_from_the_database_recovers_known_weights(project):
    """One rater a comparison, answers without noise, the choice drawn from σ(Σ w·Δmet): the stored fit
    recovers w; every pair of an item in the same fold."""
    built = build(
        project,
        specs=EXACT,
        n_items=300,
        per_item=3,
        raters=1,
        per_comparison=1,
        h_weight=0.0,
        with_model=False,
    )
    fit = fit_rubric_reward(project=project, version=built.version, snapshot=built.snapshot, c=100.0, **FAST)
    assert fit.weights == pytest.approx({"e": 1.5, "i": 0.8, "p": -1.2}, abs=0.3)
    assert fit.model_weight is None and fit.snapshot_hash == built.snapshot.content_hash
    r = fit.results
    assert (r["pairs"], r["items"], r["counts"]["without_answers"]) == (900, 300, 0)
    assert all(f["shared_items"] == 0 for f in r["folds"])
    assert r["accuracy"]["fitted"]["accuracy"] > 0.6
    event = AuditEvent.objects.get(action="rubric_reward.fit")
    assert event.target_id == str(fit.pk) and event.data["pairs"] == 900


def test_realistic_fixture_fit_with_a_reward_model(project, researcher):
    built = build(project, n_items=80, per_item=3, seed=11)
    data, counts = fit_data(built.snapshot, built.version, built.model)
    assert counts["used"] == data.n > 0 and counts["without_scores"] == 0
    assert data.xa.shape == (data.n, len(REALISTIC))
    fit = fit_rubric_reward(
        project=project,
        version=built.version,
        snapshot=built.snapshot,
        model=built.model,
        actor=researcher,
        **FAST,
    )
    acc = fit.results["accuracy"]
    assert set(acc) == {"hand_set", "fitted", "model", "combined"}
    assert all(0 <= a["ci"][0] <= a["accuracy"] <= a["ci"][1] <= 1 for a in acc.values())
    assert fit.model_version == built.model and fit.model_weight > 0
    assert fit.weights["correct"] > 0 and fit.weights["refuses"] < 0
    assert fit.created_by == researcher.username


def test_fit_options_are_checked_before_anything_is_written(project, other_project):
    built = build(project, n_items=4, per_item=1, seed=2)
    other = build(other_project, n_items=4, per_item=1, seed=3, rubric_name="Other")
    draft = draft_from(version=built.version)
    cases = [
        ({"version": draft}, "is a draft"),
        ({"snapshot": other.snapshot}, "belongs to another project"),
        ({"model": other.model}, "belongs to another project"),
        ({"c": 0}, "inverse regularisation"),
    ]
    for change, message in cases:
        args = {
            "project": project,
            "version": built.version,
            "snapshot": built.snapshot,
            "model": None,
            "c": 1.0,
        }
        with pytest.raises(RubricRewardError, match=message):
            start_fit_job(**{**args, **change}, actor=None)
    assert not RubricRewardJob.objects.exists() and not RubricRewardFit.objects.exists()


def test_a_fit_is_immutable_lineage(project):
    built = build(project, n_items=10, per_item=2, seed=4)
    fit = fit_rubric_reward(
        project=project, version=built.version, snapshot=built.snapshot, model=built.model, **FAST
    )
    fit.weights = {"correct": 99.0}
    with pytest.raises(LineageError):
        fit.save()
    with pytest.raises(LineageError):
        fit.delete()
    for attempt in (
        lambda: RubricRewardFit.objects.filter(pk=fit.pk).update(model_weight=0.0),
        lambda: RubricRewardFit.objects.filter(pk=fit.pk).delete(),
    ):
        with pytest.raises(IntegrityError, match="lineage"), transaction.atomic():
            attempt()
    fit.refresh_from_db()
    assert fit.weights["correct"] != 99.0 and RubricRewardFit.objects.count() == 1
    # As for snapshots and model versions: a transaction that asks to purge lineage may delete it, never change it.
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(PURGE_SQL)
        with pytest.raises(IntegrityError, match="lineage"), transaction.atomic():
            RubricRewardFit.objects.filter(pk=fit.pk).update(model_weight=0.0)
        RubricRewardFit.objects.filter(pk=fit.pk).delete()
    assert not RubricRewardFit.objects.exists()


def test_the_job_fits_once_and_records_failures(project, researcher, django_capture_on_commit_callbacks):
    built = build(project, n_items=12, per_item=2, seed=5)
    with django_capture_on_commit_callbacks() as queued:
        job = start_fit_job(
            project=project,
            version=built.version,
            snapshot=built.snapshot,
            model=built.model,
            c=1.0,
            actor=researcher,
            **FAST,
        )
    assert len(queued) == 1 and job.status == "queued" and not RubricRewardFit.objects.exists()
    assert tasks.fit_rubric_reward(job.pk) == "succeeded"  # the Celery task's body
    done = RubricRewardJob.objects.get(pk=job.pk)
    assert done.fit is not None and done.fit.model_version == built.model and done.finished_at is not None
    assert run_fit_job(job.pk).fit == done.fit and RubricRewardFit.objects.count() == 1  # redelivery: nothing
    tiny = build(
        project.__class__.objects.create(name="tiny", slug="tiny"),
        n_items=1,
        per_item=2,
        seed=6,
        rubric_name="T",
    )
    bad = RubricRewardJob.objects.create(
        project=tiny.project, rubric_version=tiny.version, snapshot=tiny.snapshot, options={"c": 1.0, **FAST}
    )
    failed = run_fit_job(bad.pk)
    assert failed.status == "failed" and "at least 2 items" in failed.error and failed.fit is None


# --- use: the function and the export -------------------------------------------------------------------------


def test_the_reward_function_is_the_fitted_linear_score():
    reward = RubricReward({"a": 2.0, "b": -1.0}, {"a": 0.25, "b": 0.5}, model_weight=0.5)
    assert reward({"a": "yes", "b": "no"}, 2.0) == pytest.approx(2.0 + 1.0)
    assert reward({"a": "na"}, 0.0) == pytest.approx(2 * 0.25 - 0.5)  # na and missing use the fill values
    assert reward({"a": ["yes", "no", "na", "yes"], "b": 1.0}, 0.0) == pytest.approx(2 * 2 / 3 - 1.0)
    assert reward.terms({"a": "yes", "b": "yes"}, 1.0) == {"a": 2.0, "b": -1.0, "model": 0.5}
    with pytest.raises(ValueError, match="model_score"):
        reward({"a": "yes"})
    with pytest.raises(ValueError, match="share"):
        criterion_value(1.5, 0.5)
    assert preference_probability(1.0, 1.0) == 0.5 and preference_probability(-800, 0) == pytest.approx(0.0)


def test_function_from_the_fit_json_agrees_with_the_fit_on_every_pair(project, client, researcher):
    built = build(project, n_items=30, per_item=2, seed=8)
    fit = fit_rubric_reward(
        project=project, version=built.version, snapshot=built.snapshot, model=built.model, **FAST
    )
    login(client, researcher)
    response = client.get(f"/p/{project.slug}/rubric-rewards/fits/{fit.pk}.json")
    assert response.status_code == 200 and json.loads(response.content) == json.loads(
        json.dumps(fit_parameters(fit))
    )
    reward = RubricReward.from_json(response.content.decode())
    data, _ = fit_data(built.snapshot, built.version, built.model)
    fill = np.array([fit.fill[k] for k in data.keys])
    x = rubric_fit.features(data, fill, with_model=True)
    w = np.array([*[fit.weights[k] for k in data.keys], fit.model_weight])
    for i in range(data.n):
        a = dict(zip(data.keys, data.xa[i].tolist(), strict=True))
        b = dict(zip(data.keys, data.xb[i].tolist(), strict=True))
        a = {k: (None if np.isnan(v) else v) for k, v in a.items()}
        b = {k: (None if np.isnan(v) else v) for k, v in b.items()}
        assert reward(a, data.ra[i]) - reward(b, data.rb[i]) == pytest.approx(float(x[i] @ w))


def test_trl_export_carries_reward_terms(project, tmp_path):
    built = build(project, n_items=10, per_item=2, seed=9)
    fit = fit_rubric_reward(
        project=project, version=built.version, snapshot=built.snapshot, model=built.model, **FAST
    )
    plain = export_snapshot(built.snapshot, tmp_path / "plain.jsonl", fmt="trl", margin=True)
    with_terms = export_snapshot(
        built.snapshot, tmp_path / "terms.jsonl", fmt="trl", margin=True, reward_fit=fit.pk
    )
    plain_rows = [orjson.loads(line) for line in plain.path.read_bytes().splitlines()]
    rows = [orjson.loads(line) for line in with_terms.path.read_bytes().splitlines()]
    assert len(rows) == len(plain_rows) == built.snapshot.pair_count
    reward = RubricReward(fit.weights, fit.fill, fit.model_weight)
    for row, before in zip(rows, plain_rows, strict=True):
        terms = row.pop("reward_terms")
        assert row == before  # the usual columns, unchanged
        assert (
            terms["fit"] == fit.pk
            and terms["weights"] == fit.weights
            and terms["model_weight"] == fit.model_weight
        )
        for role in ("chosen", "rejected"):
            side = terms[role]
            assert side["score"] == pytest.approx(reward(side["criteria"], side["model_score"]))
    text = export_snapshot(
        built.snapshot, tmp_path / "text.jsonl", fmt="trl", style="text", reward_fit=fit.pk
    )
    assert "reward_terms" in orjson.loads(text.path.read_bytes().splitlines()[0])
    other = build(
        project.__class__.objects.create(name="o", slug="o"), n_items=3, per_item=1, seed=10, rubric_name="O"
    )
    with pytest.raises(ExportError, match="fitted on snapshot"):
        export_snapshot(other.snapshot, tmp_path / "x.jsonl", fmt="trl", reward_fit=fit.pk)
    for bad in ({"reward_fit": fit.pk, "parquet": True}, {"reward_fit": "1"}):
        with pytest.raises(ExportError, match="reward_fit"):
            check_export_options("trl", bad)
    with pytest.raises(ExportError, match="reward_fit"):
        check_export_options("hh", {"reward_fit": fit.pk})


# --- the page -----------------------------------------------------------------------------------------------


def test_the_page_shows_criteria_disagreement_and_the_fit(
    client, project, researcher, django_capture_on_commit_callbacks
):
    built = build(project, n_items=30, per_item=2, seed=12)
    fit = fit_rubric_reward(
        project=project, version=built.version, snapshot=built.snapshot, model=built.model, **FAST
    )
    login(client, researcher)
    index = client.get(f"/p/{project.slug}/rubric-rewards/")
    url = f"/p/{project.slug}/rubric-rewards/{built.version.pk}/"
    assert index.status_code == 302 and index["Location"] == url  # one version: straight to it
    page = client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    for key in ("correct", "refuses", "language"):
        assert f'data-criterion="{key}"' in html and f'data-weight="{key}"' in html
    assert "never discriminates" in html  # "language" is met by every response
    assert html.count("<svg") >= 7 and 'data-method="combined"' in html
    assert "training accuracy" not in html  # the model was trained on another snapshot
    with django_capture_on_commit_callbacks() as queued:
        posted = client.post(url, {"snapshot": built.snapshot.pk, "model": built.model.pk, "c": "0.5"})
    assert posted.status_code == 302 and len(queued) == 1
    job = RubricRewardJob.objects.get()
    assert (job.options["c"], job.model_version, job.created_by) == (0.5, built.model, researcher)
    assert str(fit.pk) in html


def test_the_page_is_for_researchers_and_admins_of_the_project(
    client, project, annotator, outsider, admin_user
):
    built = build(project, n_items=4, per_item=1, seed=13)
    url = f"/p/{project.slug}/rubric-rewards/{built.version.pk}/"
    for user in (annotator, outsider):
        login(client, user)
        assert client.get(url).status_code == 404
        assert client.post(url, {"snapshot": built.snapshot.pk, "c": "1"}).status_code == 404
        assert client.get(f"/p/{project.slug}/rubric-rewards/").status_code == 404
    assert not RubricRewardJob.objects.exists()
    login(client, admin_user)
    assert client.get(url).status_code == 200


def test_the_page_exports_trl_rows_with_reward_terms_for_who_may_export(
    client, project, researcher, admin_user, settings, tmp_path, django_capture_on_commit_callbacks
):
    settings.ARBITER_EXPORTS_DIR = str(tmp_path)
    built = build(project, n_items=6, per_item=2, seed=14)
    fit = fit_rubric_reward(
        project=project, version=built.version, snapshot=built.snapshot, model=built.model, **FAST
    )
    url = f"/p/{project.slug}/rubric-rewards/fits/{fit.pk}/export/"
    login(client, researcher)  # the project does not let researchers export
    assert not project.researchers_can_export
    assert client.post(url).status_code == 404 and not ExportJob.objects.exists()
    login(client, admin_user)
    with django_capture_on_commit_callbacks() as queued:
        assert client.post(url).status_code == 302
    job = ExportJob.objects.get()
    assert len(queued) == 1 and (job.format, job.options["reward_fit"], job.snapshot) == (
        "trl",
        fit.pk,
        built.snapshot,
    )
    done = run_export_job(job.pk)  # the Celery task's body
    rows = [orjson.loads(line) for line in Path(done.path).read_bytes().splitlines()]
    assert done.status == "succeeded" and len(rows) == built.snapshot.pair_count
    assert all(row["reward_terms"]["fit"] == fit.pk for row in rows)


def test_command_and_api_take_the_reward_fit(
    project, admin_user, tmp_path, settings, django_capture_on_commit_callbacks
):
    built = build(project, n_items=4, per_item=2, seed=15)
    fit = fit_rubric_reward(
        project=project, version=built.version, snapshot=built.snapshot, model=built.model, **FAST
    )
    out = tmp_path / "cli.jsonl"
    call_command(
        "export_dataset", "--project", project.slug, "--format", "trl", "--snapshot", str(built.snapshot.pk),
        "--out", str(out), "--reward-fit", str(fit.pk),
    )  # fmt: skip
    assert all("reward_terms" in orjson.loads(line) for line in out.read_bytes().splitlines())
    token = {"HTTP_AUTHORIZATION": f"Bearer {create_token(user=admin_user, name='t')[1]}"}
    body = {"snapshot": built.snapshot.pk, "format": "trl", "reward_fit": fit.pk}
    with django_capture_on_commit_callbacks():
        response = Client().post(
            f"/api/projects/{project.slug}/exports", body, content_type="application/json", **token
        )
    assert response.status_code == 202, response.content
    assert ExportJob.objects.get().options["reward_fit"] == fit.pk
    with django_capture_on_commit_callbacks():
        plain = Client().post(
            f"/api/projects/{project.slug}/exports",
            {**body, "reward_fit": None},
            content_type="application/json",
            **token,
        )
    assert (
        plain.status_code == 202 and "reward_fit" not in ExportJob.objects.get(pk=plain.json()["id"]).options
    )


def test_the_index_lists_every_version_with_answers_or_fits(client, project, researcher):
    first = build(project, n_items=3, per_item=1, seed=16, rubric_name="First")
    second = build(project, n_items=3, per_item=1, seed=17, rubric_name="Second")  # now pinned
    fit_rubric_reward(project=project, version=first.version, snapshot=first.snapshot, **FAST)
    login(client, researcher)
    page = client.get(f"/p/{project.slug}/rubric-rewards/")
    html = page.content.decode()
    assert page.status_code == 200
    assert f"/rubric-rewards/{first.version.pk}/" in html and f"/rubric-rewards/{second.version.pk}/" in html
    assert "First v1" in html and "Second v1" in html
