"""Snapshot and export pages: who may use them, background jobs, expiring links that re-check permission."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from django.core import signing
from django.urls import reverse

from curation.exporters import LINK_SALT, download_token, job_for_token, run_export_job
from curation.models import DatasetSnapshot, ExportJob, SnapshotJob
from curation.snapshot_jobs import run_snapshot_job
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
    assert not SnapshotJob.objects.exists()


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


def test_snapshot_page_queues_a_snapshot_job_and_shows_it_until_made(
    client, project, researcher, snapshot, django_capture_on_commit_callbacks
):
    login(client, researcher)
    url = reverse("snapshot_list", args=[project.slug])
    with django_capture_on_commit_callbacks() as queued:
        response = client.post(
            url,
            {
                "name": "web",
                "aggregate": "majority",
                "axis": "overall",
                "exclude": ["flagged"],
                "min_agreement": "",
            },
        )
    assert response.status_code == 302 and len(queued) == 1
    assert not DatasetSnapshot.objects.filter(name="web").exists()  # not frozen in the request
    job = SnapshotJob.objects.get()
    assert (job.status, job.created_by, job.options["exclude"]) == ("queued", researcher, ["flagged"])
    pending = client.get(url, headers={"HX-Request": "true"}).content.decode()
    assert 'id="snapshot-pending"' in pending and 'hx-trigger="every 2s"' in pending
    assert 'data-status="queued"' in pending and "<form" not in pending
    assert run_snapshot_job(job.pk).status == "succeeded"
    made = DatasetSnapshot.objects.get(name="web")
    assert made.created_by == researcher and made.filters["exclude"] == ["flagged"]
    assert made.content_hash == snapshot.content_hash or made.filters != snapshot.filters
    page = client.get(url).content.decode()
    assert made.content_hash[:12] in page
    assert "hx-trigger" not in page and 'id="snapshot-jobs"' not in page  # done: no polling, no pending row


def test_a_failed_snapshot_job_shows_its_error(client, project, researcher):
    job = SnapshotJob.objects.create(project=project, created_by=researcher, options={"axis": "sideways"})
    run_snapshot_job(job.pk)
    login(client, researcher)
    page = client.get(reverse("snapshot_list", args=[project.slug])).content.decode()
    assert 'data-status="failed"' in page and "unknown axis &#x27;sideways&#x27;" in page
    assert "hx-trigger" not in page


def test_export_page_with_a_new_snapshot_queues_the_snapshot_then_the_export(
    client, project, admin_user, snapshot, exports_dir
):
    login(client, admin_user)
    url = reverse("export_page", args=[project.slug])
    response = client.post(
        url,
        {"snapshot": "", "format": "trl", "style": "text", "aggregate": "majority", "axis": "overall"},
    )
    assert response.status_code == 302
    assert DatasetSnapshot.objects.count() == 1 and not ExportJob.objects.exists()  # nothing ran yet
    job = SnapshotJob.objects.get()
    polled = client.get(url, headers={"HX-Request": "true"}).content.decode()
    assert 'id="snapshot-jobs"' in polled and 'hx-trigger="every 2s"' in polled
    assert "then export trl" in polled
    done = run_snapshot_job(job.pk)
    export = ExportJob.objects.get()
    assert done.export_job == export and export.snapshot == done.snapshot
    assert (export.status, export.options["style"], export.options["via"]) == ("queued", "text", "page")
    assert run_export_job(export.pk).status == "succeeded"
    # Same options and unchanged labels: the export reuses the existing snapshot instead of freezing a twin.
    assert done.snapshot == snapshot and DatasetSnapshot.objects.count() == 1
    # A changed selection freezes a new one.
    add_judgment(make_comparison(project, "p3", "a3", "b3"), crowd_annotator(project, "y"), preference=2)
    client.post(
        url, {"snapshot": "", "format": "trl", "style": "text", "aggregate": "majority", "axis": "overall"}
    )
    again = run_snapshot_job(SnapshotJob.objects.exclude(pk=job.pk).get().pk)
    assert again.snapshot != snapshot and again.snapshot.pair_count == snapshot.pair_count + 1
    assert DatasetSnapshot.objects.count() == 2


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
    # The page's link is signed when it renders (its timestamp may be a second past one made here): read it there.
    prefix = reverse("export_download", args=["TOKEN"]).split("TOKEN")[0]
    found = re.search(re.escape(prefix) + r"([^/\"]+)/", page.content.decode())
    assert found is not None, "the page links the export's download"
    token = found.group(1)
    assert job_for_token(token, admin_user) == job
    link = reverse("export_download", args=[token])
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


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_makes_the_snapshot_then_the_export_asked_for_on_the_page(
    client, tmp_path, project, admin_user, settings
):
    from config.celery import ensure_broker_folders
    from tests.servers import start_worker

    settings.ARBITER_EXPORTS_DIR = tmp_path
    ann = crowd_annotator(project, "x")
    add_judgment(make_comparison(project, "p1", "a1", "b1"), ann, preference=-2)
    ensure_broker_folders()
    worker = start_worker(
        tmp_path, queues="cpu", name="snapshot", extra_env={"ARBITER_EXPORTS_DIR": str(tmp_path)}
    )
    try:
        login(client, admin_user)
        url = reverse("export_page", args=[project.slug])
        form = {
            "snapshot": "",
            "format": "hh",
            "style": "conversational",
            "aggregate": "majority",
            "axis": "overall",
        }
        assert client.post(url, form).status_code == 302
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            export = ExportJob.objects.filter(status__in=("succeeded", "failed")).first()
            if export is not None:
                break
            time.sleep(0.2)
        assert export is not None and export.status == "succeeded", worker.output()
        job = SnapshotJob.objects.get()
        assert (job.status, job.export_job, export.snapshot) == ("succeeded", export, job.snapshot)
        assert export.rows == 1 and job.snapshot.created_by == admin_user
        assert AuditEvent.objects.filter(action="snapshot.create", actor=admin_user).exists()
        assert b'id="snapshot-jobs"' not in client.get(url).content  # nothing pending any more
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
