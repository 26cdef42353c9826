"""Snapshot and export pages: who may use them, background jobs, expiring links that re-check permission."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from django.core import signing
from django.urls import reverse

from curation.exporters import LINK_SALT, download_token, run_export_job
from curation.models import DatasetSnapshot, ExportJob
from curation.snapshots import create_snapshot
from projects.models import AuditEvent
from tests.conftest import login
from tests.factories import add_judgment, crowd_annotator, make_comparison


@pytest.fixture
def exports_dir(settings, tmp_path):
    settings.ARBITER_EXPORTS_DIR = tmp_path / "exports"
    return settings.ARBITER_EXPORTS_DIR


@pytest.fixture
def snapshot(project):
    ann = crowd_annotator(project, "x")
    add_judgment(make_comparison(project, "p1", "a1", "b1"), ann, preference=-2, justification="why")
    add_judgment(make_comparison(project, "p2", "a2", "b2"), ann, preference=1)
    return create_snapshot(project=project)


def urls(project):
    return [reverse("snapshot_list", args=[project.slug]), reverse("export_page", args=[project.slug])]


def test_anonymous_is_sent_to_login(client, project):
    for url in urls(project):
        response = client.get(url)
        assert response.status_code == 302 and "/login/" in response["Location"]


def test_annotators_and_outsiders_get_404(client, project, annotator, outsider):
    for user in (annotator, outsider):
        login(client, user)
        for url in urls(project):
            assert client.get(url).status_code == 404
            assert client.post(url, {"format": "trl"}).status_code == 404
    assert not DatasetSnapshot.objects.exists() and not ExportJob.objects.exists()


def test_researchers_export_only_where_the_project_grants_it(client, project, researcher):
    login(client, researcher)
    snapshots, export = urls(project)
    assert client.get(snapshots).status_code == 200
    assert client.get(export).status_code == 404
    project.researchers_can_export = True
    project.save()
    page = client.get(export)
    assert page.status_code == 200
    assert b"with_names" not in page.content  # names are an admin option


def test_snapshot_page_creates_a_snapshot(client, project, researcher, snapshot):
    login(client, researcher)
    response = client.post(
        reverse("snapshot_list", args=[project.slug]),
        {
            "name": "web",
            "aggregate": "majority",
            "axis": "overall",
            "exclude": ["flagged"],
            "min_agreement": "",
        },
    )
    assert response.status_code == 302
    made = DatasetSnapshot.objects.get(name="web")
    assert made.created_by == researcher and made.filters["exclude"] == ["flagged"]
    assert made.content_hash == snapshot.content_hash or made.filters != snapshot.filters
    page = client.get(reverse("snapshot_list", args=[project.slug]))
    assert made.content_hash[:12].encode() in page.content


def test_export_job_runs_and_its_link_downloads(client, project, admin_user, snapshot, exports_dir):
    login(client, admin_user)
    response = client.post(
        reverse("export_page", args=[project.slug]),
        {
            "snapshot": snapshot.pk,
            "format": "raw",
            "style": "conversational",
            "aggregate": "majority",
            "axis": "overall",
        },
    )
    assert response.status_code == 302
    job = ExportJob.objects.get()
    assert (job.status, job.format, job.created_by) == ("queued", "raw", admin_user)
    job = run_export_job(job.pk)
    assert (job.status, job.rows, job.progress) == ("succeeded", 2, 1.0)
    assert Path(job.path).parent == Path(exports_dir)
    page = client.get(reverse("export_page", args=[project.slug]))
    token = download_token(job, admin_user)
    link = reverse("export_download", args=[token])
    assert link.encode() in page.content
    download = client.get(link)
    assert download.status_code == 200
    body = b"".join(download.streaming_content)
    lines = [json.loads(line) for line in body.splitlines()]
    assert len(lines) == 2 and lines[0]["justification"] == "why"
    assert {line["annotator"] for line in lines} != {"x"}
    card = client.get(link + "?part=card")
    assert snapshot.content_hash.encode() in b"".join(card.streaming_content)
    event = AuditEvent.objects.get(action="export.create")
    assert event.actor == admin_user and event.data["via"] == "page" and event.data["format"] == "raw"


def test_htmx_poll_renders_only_the_jobs_partial(client, project, admin_user, snapshot, exports_dir):
    login(client, admin_user)
    page = client.get(reverse("export_page", args=[project.slug]), headers={"HX-Request": "true"})
    assert page.status_code == 200
    assert b'id="export-jobs"' in page.content and b"<form" not in page.content


def _finished_job(project, user, snapshot):
    job = ExportJob.objects.create(
        project=project, snapshot=snapshot, created_by=user, format="trl", options={}
    )
    return run_export_job(job.pk)


def test_links_recheck_permission_and_belong_to_their_user(
    client, project, researcher, annotator, snapshot, exports_dir
):
    project.researchers_can_export = True
    project.save()
    job = _finished_job(project, researcher, snapshot)
    link = reverse("export_download", args=[download_token(job, researcher)])
    login(client, researcher)
    assert client.get(link).status_code == 200
    login(client, annotator)
    assert client.get(link).status_code == 404  # someone else's link
    assert client.get(reverse("export_download", args=[download_token(job, annotator)])).status_code == 404
    project.researchers_can_export = False
    project.save()
    login(client, researcher)
    assert client.get(link).status_code == 404  # permission withdrawn since the link was made


class _PastSigner(signing.TimestampSigner):
    def timestamp(self) -> str:
        return signing.b62_encode(int(time.time()) - 3 * 24 * 3600)


def test_an_expired_link_is_refused(client, project, admin_user, snapshot, exports_dir, settings):
    settings.ARBITER_EXPORT_LINK_SECONDS = 24 * 3600
    job = _finished_job(project, admin_user, snapshot)
    old = _PastSigner(salt=LINK_SALT).sign_object({"job": job.pk, "user": admin_user.pk})
    login(client, admin_user)
    assert client.get(reverse("export_download", args=[old])).status_code == 404
    assert client.get(reverse("export_download", args=[old + "x"])).status_code == 404
    assert client.get(reverse("export_download", args=[download_token(job, admin_user)])).status_code == 200


def test_only_admins_may_ask_for_names(client, project, researcher, snapshot, exports_dir):
    project.researchers_can_export = True
    project.save()
    login(client, researcher)
    client.post(
        reverse("export_page", args=[project.slug]),
        {
            "snapshot": snapshot.pk,
            "format": "raw",
            "style": "text",
            "with_names": "on",
            "aggregate": "majority",
            "axis": "overall",
        },
    )
    assert ExportJob.objects.get().options["with_names"] is False


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_runs_an_export_job_from_the_cpu_queue(tmp_path, project, admin_user):
    from config.celery import ensure_broker_folders
    from curation.exporters import start_export_job
    from tests.servers import start_worker

    ann = crowd_annotator(project, "x")
    add_judgment(make_comparison(project, "p1", "a1", "b1"), ann, preference=-2)
    snapshot = create_snapshot(project=project)
    ensure_broker_folders()
    worker = start_worker(
        tmp_path, queues="cpu", name="export", extra_env={"ARBITER_EXPORTS_DIR": str(tmp_path)}
    )
    try:
        job = start_export_job(project=project, actor=admin_user, snapshot=snapshot, fmt="trl", options={})
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            job.refresh_from_db()
            if job.status in ("succeeded", "failed"):
                break
            time.sleep(0.2)
        assert job.status == "succeeded", worker.output()
        assert job.rows == 1 and Path(job.path).parent == tmp_path
        assert AuditEvent.objects.filter(action="export.create", actor=admin_user).exists()
    finally:
        worker.stop()


def _memory_kib(pid: int, field: str) -> int:
    """A memory line of /proc/PID/status: VmRSS (now) or VmHWM (the peak so far), in KiB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(fields[field].split()[0])


@pytest.mark.django_db(transaction=True)
def test_a_large_export_is_streamed_by_the_asgi_server_not_held_in_its_memory(
    client, tmp_path, project, admin_user
):
    """Through the real server (uvicorn): the download is the file, byte for byte, and the server's peak memory
    grows by far less than the file (Django's own ASGI handler reads a file response whole into memory first)."""
    import hashlib

    import httpx

    from tests.servers import start_asgi

    def export(name: str, size: int) -> ExportJob:
        path = tmp_path / name
        block = hashlib.sha256(name.encode()).hexdigest().encode() * 2**14  # 1 MiB
        with open(path, "wb") as fh:
            for _ in range(size // len(block)):
                fh.write(block)
            fh.write(block[: size % len(block)])
        return ExportJob.objects.create(
            project=project, created_by=admin_user, format="raw", status="succeeded", path=str(path)
        )

    small, large = export("small.jsonl", 1000), export("large.jsonl", 64 * 2**20 + 123)
    client.force_login(admin_user)
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    server, base_url = start_asgi(tmp_path)

    def download(job: ExportJob) -> str:
        url = base_url + reverse("export_download", args=[download_token(job, admin_user)])
        digest = hashlib.sha256()
        with httpx.stream("GET", url, headers={"Cookie": cookie}, timeout=60) as r:
            assert r.status_code == 200
            for block in r.iter_bytes(2**20):
                digest.update(block)
        return digest.hexdigest()

    try:
        # The small one first, so that what the first download loads is in memory before the measure.
        assert download(small) == hashlib.sha256(Path(small.path).read_bytes()).hexdigest()
        before = _memory_kib(server.proc.pid, "VmRSS")
        assert download(large) == hashlib.sha256(Path(large.path).read_bytes()).hexdigest()
        peak = _memory_kib(server.proc.pid, "VmHWM")
    finally:
        server.stop()
    assert peak - before < 16 * 1024, (before, peak)  # KiB; the file is 64 MiB
    assert "must consume synchronous iterators" not in server.output()
