"""Pushing items through the API queues the import page's job: good files commit, bad files report their lines
and change nothing; the POST answers 202 at once and GET /api/imports/{id} reports. A real worker runs an API
import and then an API snapshot end to end."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from annotate.models import Comparison
from curation.importers.jobs import run_import_job
from curation.models import ImportJob
from projects.api_auth import create_token

GOOD = (
    b'{"prompt": "Say hi", "chosen": "Hi!", "rejected": "Go away."}\n'
    b'{"prompt": "Say bye", "chosen": "Bye!", "rejected": "Whatever."}\n'
)
BAD = GOOD + b'{"prompt": "x", "chosen": 3}\n'


@pytest.fixture(autouse=True)
def imports_dir(settings, tmp_path):
    settings.ARBITER_IMPORTS_DIR = tmp_path / "imports"
    return settings.ARBITER_IMPORTS_DIR


def bearer(user) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_token(user=user, name='t')[1]}"}


def push(client, user, project, body: bytes, **query):
    params = "&".join(f"{k}={v}" for k, v in {"format": "trl", **query}.items())
    return client.post(
        f"/api/projects/{project.slug}/items?{params}",
        {"file": SimpleUploadedFile("pairs.jsonl", body)},
        headers=bearer(user),
    )


def pushed_and_run(client, user, project, body: bytes, **query) -> dict:
    """Push, check that nothing was imported in the request, run the job as the worker does, then poll."""
    before = Comparison.objects.count()
    response = push(client, user, project, body, **query)
    assert response.status_code == 202, response.content
    queued = response.json()
    assert (queued["status"], queued["filename"], queued["format"]) == ("queued", "pairs.jsonl", "trl")
    assert Comparison.objects.count() == before
    job = ImportJob.objects.get(pk=queued["id"])
    assert Path(job.path).read_bytes() == body  # the upload is stored for the worker
    run_import_job(job_id=job.pk)
    assert not Path(job.path).exists()
    return client.get(f"/api/imports/{job.pk}", headers=bearer(user)).json()


def test_admin_pushes_a_file(client, project, admin_user, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as queued:
        response = push(client, admin_user, project, GOOD)
    assert response.status_code == 202 and len(queued) == 1  # run_import is sent after commit
    job = ImportJob.objects.get(pk=response.json()["id"])
    assert (job.created_by, job.project, job.skip_invalid) == (admin_user, project, False)
    run_import_job(job_id=job.pk)
    status = client.get(f"/api/imports/{job.pk}", headers=bearer(admin_user)).json()
    assert status["status"] == "succeeded" and status["progress"] == 1.0
    assert status["report"]["comparisons_created"] == 2 and status["report"]["committed"]
    assert Comparison.objects.filter(project=project).count() == 2


def test_a_bad_line_is_reported_and_nothing_changes(client, project, admin_user):
    failed = pushed_and_run(client, admin_user, project, BAD)
    assert failed["status"] == "failed" and not failed["report"]["committed"]
    errors = failed["report"]["errors"]
    assert [(e["file"], e["line"]) for e in errors] == [("pairs.jsonl", 3)]
    assert errors[0]["field"] and errors[0]["message"]
    assert not Comparison.objects.filter(project=project).exists()
    skipped = pushed_and_run(client, admin_user, project, BAD, skip_invalid="true")
    assert skipped["status"] == "succeeded" and skipped["report"]["bad_lines"] == 1
    assert Comparison.objects.filter(project=project).count() == 2


def test_researchers_cannot_push_or_read_imports(client, project, researcher, admin_user):
    assert push(client, researcher, project, GOOD).status_code == 404
    assert not Comparison.objects.exists() and not ImportJob.objects.exists()
    job_id = push(client, admin_user, project, GOOD).json()["id"]
    assert client.get(f"/api/imports/{job_id}", headers=bearer(researcher)).status_code == 404
    assert client.get(f"/api/imports/{job_id + 1}", headers=bearer(admin_user)).status_code == 404


def test_an_upload_over_the_limit_is_refused_and_nothing_is_stored(client, project, admin_user, settings):
    settings.ARBITER_MAX_UPLOAD_BYTES = len(GOOD) - 1
    response = push(client, admin_user, project, GOOD)
    assert response.status_code == 413 and "limit" in response.json()["detail"]
    assert not ImportJob.objects.exists()
    imports = Path(settings.ARBITER_IMPORTS_DIR)
    assert not imports.exists() or not any(imports.iterdir())


def _poll(client, url: str, headers: dict, worker, timeout: float = 90.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(url, headers=headers).json()
        if body["status"] in ("succeeded", "failed"):
            return body
        time.sleep(0.2)
    raise AssertionError(worker.output())


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_runs_an_api_import_then_an_api_snapshot(
    client, project, admin_user, tmp_path, settings
):
    from config.celery import ensure_broker_folders
    from tests.servers import start_worker

    settings.ARBITER_IMPORTS_DIR = tmp_path / "imports"
    ensure_broker_folders()
    worker = start_worker(
        tmp_path, queues="cpu", name="api-jobs", extra_env={"ARBITER_IMPORTS_DIR": str(tmp_path / "imports")}
    )
    headers = bearer(admin_user)
    try:
        pushed = push(client, admin_user, project, BAD, skip_invalid="true")
        assert pushed.status_code == 202
        imported = _poll(client, f"/api/imports/{pushed.json()['id']}", headers, worker)
        assert imported["status"] == "succeeded", worker.output()
        assert imported["report"]["comparisons_created"] == 2 and imported["report"]["bad_lines"] == 1
        assert [(e["file"], e["line"]) for e in imported["report"]["errors"]] == [("pairs.jsonl", 3)]
        queued = client.post(
            f"/api/projects/{project.slug}/snapshots",
            data={"name": "after import"},
            content_type="application/json",
            headers=headers,
        )
        assert queued.status_code == 202
        made = _poll(client, f"/api/snapshot-jobs/{queued.json()['id']}", headers, worker)
        assert made["status"] == "succeeded", worker.output()
        snapshot = client.get(f"/api/snapshots/{made['snapshot']}", headers=headers).json()
        # Imported source labels are pairs of their own (DESIGN: included unless excluded).
        assert snapshot["name"] == "after import" and snapshot["pair_count"] == 2
        assert snapshot["created_by"] == admin_user.username
    finally:
        worker.stop()
