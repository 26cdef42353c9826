"""The admins' upload page: a real Celery worker runs the job; everyone else gets 404; big bodies are refused."""

from __future__ import annotations

import asyncio
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from django.urls import reverse

from config.celery import ensure_broker_folders
from curation.models import ImportJob
from infra.uploads import BodyLimitMiddleware, StreamToDiskUploadHandler, UploadTooLarge
from tests.conftest import login
from tests.servers import start_worker

from .importing import counts, fixture


def _upload(client, project, name: str, **extra):
    data = {
        "project": project.pk,
        "format": extra.pop("fmt", "trl"),
        "source": "",
        "file": SimpleUploadedFile(name, fixture(name).read_bytes()),
        **extra,
    }
    return client.post(reverse("import_new"), data)


def _wait_for(job_id: int, worker, timeout: float = 90.0) -> ImportJob:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = ImportJob.objects.get(pk=job_id)
        if job.status in (ImportJob.Status.SUCCEEDED, ImportJob.Status.FAILED):
            return job
        time.sleep(0.2)
    raise AssertionError(worker.output())


@pytest.mark.django_db(transaction=True)
def test_admin_uploads_a_file_and_the_worker_reports_bad_lines(client, project, admin_user, tmp_path):
    ensure_broker_folders()
    worker = start_worker(tmp_path, queues="cpu", name="imports")
    try:
        login(client, admin_user)
        response = _upload(client, project, "trl_bad.jsonl")
        assert response.status_code == 302
        job = ImportJob.objects.get()
        assert response["Location"] == reverse("import_job", args=[job.pk])
        assert (job.format, job.filename, job.created_by) == ("trl", "trl_bad.jsonl", admin_user)
        running = client.get(response["Location"])
        assert running.status_code == 200
        job = _wait_for(job.pk, worker)
        assert job.status == ImportJob.Status.FAILED
        assert job.report["bad_lines"] == 6 and not job.report["committed"]
        assert counts(project)["comparisons"] == 0
        page = client.get(reverse("import_job", args=[job.pk]), headers={"HX-Request": "true"})
        html = page.content.decode()
        assert 'id="job-status"' in html and "<html" not in html  # the htmx partial
        assert "Nothing was imported: 6 bad lines" in html
        assert 'id="import-counts"' not in html  # no "created" counters beside "nothing was imported"
        for line in (2, 3, 4, 5, 7, 8):
            assert f"<td>{line}</td>" in html
        assert "hx-trigger" not in html  # polling stops when the job is done

        again = _upload(client, project, "trl_bad.jsonl", skip_invalid="on")
        job2 = _wait_for(int(again["Location"].rstrip("/").rsplit("/", 1)[1]), worker)
        assert job2.status == ImportJob.Status.SUCCEEDED and job2.report["comparisons_created"] == 2
        assert job2.progress == 1.0
        assert counts(project)["comparisons"] == 2
        committed = client.get(again["Location"]).content.decode()
        assert "Committed. 8 lines: 2 good, 6 bad (skipped)." in committed
        assert 'id="import-counts"' in committed
    finally:
        worker.stop()


@pytest.mark.django_db
def test_running_job_page_polls_with_a_progress_bar(client, project, admin_user):
    login(client, admin_user)
    job = ImportJob.objects.create(
        project=project,
        created_by=admin_user,
        format="hh",
        filename="x.jsonl",
        path="/nonexistent",
        status=ImportJob.Status.RUNNING,
        progress=0.25,
    )
    html = client.get(reverse("import_job", args=[job.pk])).content.decode()
    assert "<progress" in html and 'hx-trigger="every 1s"' in html
    assert f'hx-get="{reverse("import_job", args=[job.pk])}"' in html


@pytest.mark.django_db
def test_import_pages_are_for_admins_and_the_projects_researchers(
    client, project, annotator, researcher, outsider, admin_user
):
    job = ImportJob.objects.create(
        project=project, created_by=admin_user, format="hh", filename="x", path="/x"
    )
    login(client, annotator)
    assert client.get(reverse("import_new")).status_code == 404
    assert client.get(reverse("import_job", args=[job.pk])).status_code == 404
    assert _upload(client, project, "trl_good.jsonl").status_code == 404
    login(client, outsider)  # a researcher elsewhere: their own page, not this project's imports
    page = client.get(reverse("import_new")).content.decode()
    assert f'value="{project.pk}"' not in page
    assert client.get(reverse("import_job", args=[job.pk])).status_code == 404
    assert _upload(client, project, "trl_good.jsonl").status_code == 200  # the form refuses the project
    assert ImportJob.objects.count() == 1
    login(client, researcher)
    assert f'value="{project.pk}"' in client.get(reverse("import_new")).content.decode()
    assert client.get(reverse("import_job", args=[job.pk])).status_code == 200
    client.logout()
    response = client.get(reverse("import_new"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


@pytest.mark.django_db
def test_upload_over_the_limit_is_refused_before_it_is_stored(
    client, project, admin_user, settings, tmp_path
):
    settings.ARBITER_IMPORTS_DIR = tmp_path / "imports"
    login(client, admin_user)
    with override_settings(ARBITER_MAX_UPLOAD_BYTES=200):
        response = _upload(client, project, "trl_good.jsonl")
    assert response.status_code == 413
    assert "larger than the upload limit of 200 bytes" in response.content.decode()
    assert ImportJob.objects.count() == 0
    assert not (tmp_path / "imports").exists() or not any((tmp_path / "imports").iterdir())


def test_upload_handler_counts_streamed_bytes_even_without_a_length(settings, tmp_path):
    settings.ARBITER_IMPORTS_DIR = tmp_path
    handler = StreamToDiskUploadHandler(None, limit=10)
    handler.handle_raw_input(None, {}, 0, b"x")  # no Content-Length: streamed bytes are counted
    with pytest.raises(Exception):  # noqa: B017 - StopFutureHandlers: this handler takes the file
        handler.new_file("file", "big.jsonl", "application/json", None)
    handler.receive_data_chunk(b"12345", 0)
    with pytest.raises(UploadTooLarge):
        handler.receive_data_chunk(b"678901", 5)
    assert list(tmp_path.iterdir()) == []  # the partial file is gone


def _asgi(limit_settings, headers, chunks):
    """Drive BodyLimitMiddleware with a fake app; returns (status sent, app body bytes read)."""
    seen = {"read": 0, "called": False}

    async def app(scope, receive, send):
        seen["called"] = True
        while True:
            message = await receive()
            seen["read"] += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    queue = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)
    ]
    sent = []

    async def receive():
        return queue.pop(0)

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "headers": headers}
    asyncio.run(BodyLimitMiddleware(app)(scope, receive, send))
    return sent[0]["status"], seen


def test_asgi_guard_refuses_by_content_length_without_reading(settings):
    settings.ARBITER_MAX_UPLOAD_BYTES = 100
    status, seen = _asgi(settings, [(b"content-length", b"5000")], [b"x" * 5000])
    assert status == 413 and not seen["called"]


def test_asgi_guard_stops_a_stream_that_passes_the_limit(settings):
    settings.ARBITER_MAX_UPLOAD_BYTES = 100
    status, seen = _asgi(settings, [], [b"x" * 60, b"x" * 60, b"x" * 60])
    assert status == 413 and seen["read"] == 60
    status, _ = _asgi(settings, [], [b"x" * 60])
    assert status == 200


def test_real_server_answers_413_to_an_oversized_body_before_django_reads_it(tmp_path):
    import httpx

    from tests.servers import start_asgi

    server, base = start_asgi(tmp_path, extra_env={"ARBITER_MAX_UPLOAD_MB": "1"})
    try:
        body = b"x" * (2 * 1024 * 1024)
        response = httpx.post(
            f"{base}/imports/", content=body, headers={"content-type": "multipart/form-data; boundary=b"}
        )
        assert response.status_code == 413
        assert "limited to 1.0 MiB" in response.text
        small = httpx.get(f"{base}/imports/")
        assert small.status_code == 302  # below the limit, Django answers (anonymous → login)
    finally:
        server.stop()
