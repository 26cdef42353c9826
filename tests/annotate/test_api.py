"""The JSON API: tokens, its OpenAPI schema, and the pages' permissions on every endpoint."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from openapi_spec_validator import validate

from curation.exporters import run_export_job
from curation.models import DatasetSnapshot, ExportJob, ImportJob, SnapshotJob
from curation.snapshot_jobs import run_snapshot_job
from projects.api_auth import create_token, hash_token, revoke_token
from projects.models import ApiToken, AuditEvent
from rewardtrain.models import ModelVersion, TrainingRun
from tests.conftest import login
from tests.factories import two_pair_snapshot


@pytest.fixture(autouse=True)
def exports_dir(settings, tmp_path):
    settings.ARBITER_EXPORTS_DIR = tmp_path / "exports"
    settings.ARBITER_IMPORTS_DIR = tmp_path / "imports"


@pytest.fixture
def snapshot(project):
    return two_pair_snapshot(project)


@pytest.fixture
def run(project, snapshot):
    return TrainingRun.objects.create(project=project, snapshot=snapshot, base_model="tiny", status="running")


@pytest.fixture
def job(project, snapshot, admin_user):
    made = ExportJob.objects.create(
        project=project, snapshot=snapshot, created_by=admin_user, format="hh", options={}
    )
    return run_export_job(made.pk)


@pytest.fixture
def jobs(project, admin_user, tmp_path, run):
    """A snapshot job, an import job and a model version of `project` (the ids its endpoints answer for)."""
    return {
        "version": ModelVersion.objects.create(
            run=run, project=project, path=str(tmp_path), snapshot_hash=run.snapshot.content_hash
        ),
        "snapshot": SnapshotJob.objects.create(project=project, created_by=admin_user),
        "import": ImportJob.objects.create(
            project=project, created_by=admin_user, format="trl", filename="x.jsonl", path=str(tmp_path / "x")
        ),
    }


def bearer(user) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_token(user=user, name='t')[1]}"}


def test_schema_validates_and_docs_are_served(client, researcher):
    client.force_login(researcher)  # the schema and docs are for signed-in users (tests/test_security.py)
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    validate(schema)
    assert "/api/projects/{slug}/items" in schema["paths"]
    assert "/api/imports/{job_id}" in schema["paths"] and "/api/snapshot-jobs/{job_id}" in schema["paths"]
    # No whole export inside a request: POST /exports, GET /exports/{id} and its file are the way.
    assert not any(p.startswith("/api/snapshots/") and p.endswith("/export") for p in schema["paths"])
    docs = client.get("/api/docs")
    assert docs.status_code == 200
    assert b"cdn" not in docs.content.lower()  # Swagger assets are served locally (offline)


def test_tokens_are_stored_hashed_and_shown_once(client, researcher):
    login(client, researcher)
    page = client.post(reverse("token_list"), {"name": "pipeline"})
    raw = page.context["new_token"]
    assert raw.startswith("arb_") and raw.encode() in page.content
    token = ApiToken.objects.get(user=researcher)
    assert token.key_hash == hash_token(raw) and raw not in (token.key_hash, token.prefix)
    again = client.get(reverse("token_list"))
    assert raw.encode() not in again.content and token.prefix.encode() in again.content
    assert AuditEvent.objects.filter(action="api_token.create", actor=researcher).exists()


def test_missing_bad_and_revoked_tokens_are_401(client, researcher, project):
    assert client.get("/api/projects").status_code == 401
    assert client.get("/api/projects", headers={"Authorization": "Bearer nope"}).status_code == 401
    token, raw = create_token(user=researcher, name="t")
    headers = {"Authorization": f"Bearer {raw}"}
    assert client.get("/api/projects", headers=headers).json() == [
        {"slug": "hh", "name": "Helpful and harmless", "role": "researcher"}
    ]
    assert ApiToken.objects.get(pk=token.pk).last_used_at is not None
    revoke_token(user=researcher, token_id=token.pk)
    assert client.get("/api/projects", headers=headers).status_code == 401


def test_token_page_revokes_only_your_own(client, researcher, annotator):
    token, _ = create_token(user=researcher, name="t")
    login(client, annotator)
    assert client.post(reverse("token_revoke", args=[token.pk])).status_code == 404
    login(client, researcher)
    assert client.post(reverse("token_revoke", args=[token.pk])).status_code == 302
    assert ApiToken.objects.get(pk=token.pk).revoked_at is not None


def calls(project, snapshot, job, run, jobs) -> list[tuple[str, str, dict]]:
    """One concrete call per endpoint of the schema (valid bodies, so only permissions can refuse)."""
    slug = project.slug
    return [
        ("get", f"/api/projects/{slug}/snapshots", {}),
        ("post", f"/api/projects/{slug}/snapshots", {"json": {"aggregation": "majority"}}),
        ("get", f"/api/snapshots/{snapshot.pk}", {}),
        ("get", f"/api/snapshot-jobs/{jobs['snapshot'].pk}", {}),
        ("post", f"/api/projects/{slug}/exports", {"json": {"snapshot": snapshot.pk, "format": "trl"}}),
        ("get", f"/api/exports/{job.pk}", {}),
        ("get", f"/api/exports/{job.pk}/file", {}),
        ("get", f"/api/projects/{slug}/agreement", {}),
        ("get", f"/api/projects/{slug}/runs", {}),
        ("get", f"/api/runs/{run.pk}", {}),
        ("post", f"/api/projects/{slug}/runs", {"json": {"snapshot": snapshot.pk}}),
        ("post", f"/api/projects/{slug}/items?format=trl", {"file": True}),
        ("get", f"/api/imports/{jobs['import'].pk}", {}),
        ("get", f"/api/models/{jobs['version'].pk}/download", {}),
    ]


# The labelling API, which annotators use (tests/annotate/test_labelling_api.py): covered here by path only.
LABELLING = {
    ("post", "/api/projects/{slug}/claim/"),
    ("post", "/api/projects/{slug}/assignments/{assignment_id}/submit/"),
    ("post", "/api/projects/{slug}/assignments/{assignment_id}/draft/"),
    ("post", "/api/projects/{slug}/assignments/{assignment_id}/skip/"),
}
# A model comparison's figures: researchers' access and content in tests/rewardtrain/test_eval_sets.py.
ELSEWHERE = {("get", "/api/eval-comparisons/{job_id}")}


def do(client, method: str, url: str, headers: dict, spec: dict):
    if "json" in spec:
        return client.post(
            url, data=json.dumps(spec["json"]), content_type="application/json", headers=headers
        )
    if spec.get("file"):
        upload = SimpleUploadedFile("pairs.jsonl", b'{"prompt": "p", "chosen": "a", "rejected": "b"}\n')
        return client.post(url, {"file": upload}, headers=headers)
    return getattr(client, method)(url, headers=headers)


def test_every_endpoint_is_covered(client, project, snapshot, job, run, jobs, researcher):
    client.force_login(researcher)
    schema = client.get("/api/openapi.json").json()
    declared = {(m, p) for p, ops in schema["paths"].items() for m in ops}
    covered = {("get", "/api/projects")} | LABELLING | ELSEWHERE
    for method, url, _ in calls(project, snapshot, job, run, jobs):
        path = url.split("?")[0]
        template = next(
            p
            for m, p in declared
            if m == method
            and len(p.split("/")) == len(path.split("/"))
            and all(a == b or a.startswith("{") for a, b in zip(p.split("/"), path.split("/"), strict=True))
        )
        covered.add((method, template))
    assert covered == declared


def test_annotators_and_outsiders_get_404_everywhere(
    client, project, snapshot, job, run, jobs, annotator, outsider
):
    for user in (annotator, outsider):
        headers = bearer(user)
        for method, url, spec in calls(project, snapshot, job, run, jobs):
            response = do(client, method, url, headers, spec)
            assert response.status_code == 404, (user, method, url, response.content)
    assert DatasetSnapshot.objects.count() == 1 and ExportJob.objects.count() == 1
    assert SnapshotJob.objects.count() == 1 and ImportJob.objects.count() == 1
    assert not TrainingRun.objects.exclude(pk=run.pk).exists()


def test_researchers_without_export_rights_get_404_on_exports_only(
    client, project, snapshot, job, run, jobs, researcher
):
    headers = bearer(researcher)
    for method, url, spec in calls(project, snapshot, job, run, jobs):
        response = do(client, method, url, headers, spec)
        if "export" in url or "/items" in url or "/imports/" in url:
            assert response.status_code == 404, (method, url)
        elif method == "post" and url.endswith("/runs"):
            # Allowed through, then refused for what it lacks: no base model was given.
            assert response.status_code == 400, (method, url, response.content)
        else:
            assert response.status_code in (200, 202), (method, url, response.content)


def test_admin_pulls_snapshots_and_exports(client, project, snapshot, admin_user):
    headers = bearer(admin_user)
    listed = client.get(f"/api/projects/{project.slug}/snapshots", headers=headers).json()
    assert [s["content_hash"] for s in listed] == [snapshot.content_hash]
    queued = client.post(
        f"/api/projects/{project.slug}/snapshots",
        data=json.dumps({"axis": "overall", "exclude": ["flagged"], "name": "api"}),
        content_type="application/json",
        headers=headers,
    )
    assert queued.status_code == 202 and queued.json()["status"] == "queued"
    assert queued.json()["snapshot"] is None and DatasetSnapshot.objects.count() == 1  # not in the request
    job_url = f"/api/snapshot-jobs/{queued.json()['id']}"
    assert client.get(job_url, headers=headers).json()["status"] == "queued"
    run_snapshot_job(queued.json()["id"])  # what the worker runs
    done = client.get(job_url, headers=headers).json()
    assert done["status"] == "succeeded" and done["error"] == "" and done["finished_at"]
    made = client.get(f"/api/snapshots/{done['snapshot']}", headers=headers).json()
    assert made["name"] == "api" and made["filters"]["exclude"] == ["flagged"]
    assert made["created_by"] == admin_user.username
    bad = client.post(
        f"/api/projects/{project.slug}/snapshots",
        data=json.dumps({"min_agreement": 3}),
        content_type="application/json",
        headers=headers,
    )
    assert bad.status_code == 400 and "min_agreement" in bad.json()["detail"]
    assert SnapshotJob.objects.count() == 1  # a bad option queues nothing
    # The whole export: a job, its status, then the file (no export runs inside a request).
    export = client.post(
        f"/api/projects/{project.slug}/exports",
        data=json.dumps({"snapshot": snapshot.pk, "format": "trl", "style": "text", "margin": True}),
        content_type="application/json",
        headers=headers,
    )
    assert export.status_code == 202
    run_export_job(export.json()["id"])
    status = client.get(f"/api/exports/{export.json()['id']}", headers=headers).json()
    assert status["status"] == "succeeded" and status["download_url"]
    file = client.get(f"/api/exports/{export.json()['id']}/file", headers=headers)
    assert file.status_code == 200
    lines = [json.loads(x) for x in b"".join(file.streaming_content).splitlines()]
    assert lines == [
        {"prompt": "p1", "chosen": "a1", "rejected": "b1", "margin": pytest.approx(2 / 3)},
        {"prompt": "p2", "chosen": "b2", "rejected": "a2", "margin": pytest.approx(1 / 3)},
    ]
    event = AuditEvent.objects.get(action="export.create")
    assert event.actor == admin_user and event.data["via"] == "api"


def test_a_failed_snapshot_job_says_why(client, project, researcher):
    job = SnapshotJob.objects.create(project=project, created_by=researcher, options={"aggregation": "vote"})
    run_snapshot_job(job.pk)
    failed = client.get(f"/api/snapshot-jobs/{job.pk}", headers=bearer(researcher)).json()
    assert failed["status"] == "failed" and failed["snapshot"] is None
    assert "unknown aggregation 'vote'" in failed["error"]


def test_export_jobs_through_the_api(client, project, snapshot, admin_user):
    headers = bearer(admin_user)
    queued = client.post(
        f"/api/projects/{project.slug}/exports",
        data=json.dumps({"snapshot": snapshot.pk, "format": "safe-rlhf", "parquet": True}),
        content_type="application/json",
        headers=headers,
    )
    assert queued.status_code == 202 and queued.json()["status"] == "queued"
    job_id = queued.json()["id"]
    run_export_job(job_id)
    status = client.get(f"/api/exports/{job_id}", headers=headers).json()
    assert status["status"] == "succeeded" and status["rows"] == 2 and status["download_url"]
    data = client.get(f"/api/exports/{job_id}/file", headers=headers)
    assert data.status_code == 200 and b"".join(data.streaming_content)[:4] == b"PAR1"
    card = client.get(f"/api/exports/{job_id}/file?part=card", headers=headers)
    assert snapshot.content_hash.encode() in b"".join(card.streaming_content)


def test_figures_runs_and_push_answer_or_say_why_not(client, project, snapshot, run, admin_user):
    headers = bearer(admin_user)
    agreement = client.get(f"/api/projects/{project.slug}/agreement", headers=headers)
    # No dashboard figures cached yet: the request schedules their recompute instead of computing them.
    assert agreement.status_code == 202 and agreement.json()["status"] == "computing"
    runs = client.get(f"/api/projects/{project.slug}/runs", headers=headers).json()
    assert [(r["id"], r["status"], r["snapshot"]) for r in runs] == [(run.pk, "running", snapshot.pk)]
    assert client.get(f"/api/runs/{run.pk}", headers=headers).json()["base_model"] == "tiny"
    started = do(
        client, "post", f"/api/projects/{project.slug}/runs", headers, {"json": {"snapshot": snapshot.pk}}
    )
    assert started.status_code == 400
    assert "base model" in started.json()["detail"]
