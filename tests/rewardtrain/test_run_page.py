"""Run, start, registry and evaluation pages: researchers and admins only (annotators and outsiders 404),
live progress card with a server-rendered loss curve, cancel, activation, evaluation upload; the websocket."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets
from asgiref.sync import async_to_sync
from asgiref.testing import ApplicationCommunicator
from channels.layers import get_channel_layer
from channels.routing import URLRouter
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from config.routing import websocket_urlpatterns
from projects.models import AuditEvent
from rewardtrain import evaluation, runner, services
from rewardtrain.models import EvaluationJob, ModelVersion, TrainingRun
from tests.backends import require_redis
from tests.conftest import login
from tests.factories import add_judgment, crowd_annotator, make_comparison
from tests.rewardtrain.apphelpers import HELPFUL, RUDE, finished_version, make_snapshot
from tests.servers import start_asgi


@pytest.fixture
def run(project) -> TrainingRun:
    run = services.start_run(
        project=project,
        objective="bt",
        base_model="/models/base",
        snapshot=make_snapshot(project, 4),
        config={},
    )
    TrainingRun.objects.filter(pk=run.pk).update(
        status="running",
        attempt=1,
        progress={
            "step": 30,
            "total_steps": 120,
            "loss": 0.4321,
            "pairs_per_s": 55.5,
            "eta_s": 90,
            "history": [[10, 0.69], [20, 0.55], [30, 0.43]],
        },
    )
    run.refresh_from_db()
    return run


def _pages(project, run, version) -> list[tuple[str, str]]:
    slug = project.slug
    return [
        ("get", reverse("rewardtrain:run_list", args=[slug])),
        ("get", reverse("rewardtrain:run_new", args=[slug])),
        ("get", reverse("rewardtrain:run_detail", args=[slug, run.pk])),
        ("post", reverse("rewardtrain:run_cancel", args=[slug, run.pk])),
        ("get", reverse("rewardtrain:model_list", args=[slug])),
        ("post", reverse("rewardtrain:model_activate", args=[slug, version.pk])),
        ("get", reverse("rewardtrain:evaluate_new", args=[slug, version.pk])),
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("persona", ["annotator", "outsider"])
def test_annotators_and_outsiders_get_404_everywhere(client, project, run, persona, request):
    version = finished_version(project, "bt")
    login(client, request.getfixturevalue(persona))
    for method, url in _pages(project, run, version):
        assert getattr(client, method)(url).status_code == 404, url
    run.refresh_from_db()
    version.refresh_from_db()
    assert not run.cancel_requested and not version.is_active


@pytest.mark.django_db
def test_anonymous_is_sent_to_login(client, project, run):
    response = client.get(reverse("rewardtrain:run_detail", args=[project.slug, run.pk]))
    assert response.status_code == 302 and "/login/" in response["Location"]


@pytest.mark.django_db
def test_run_from_another_project_is_404_even_for_its_researcher(
    client, project, other_project, run, researcher
):
    login(client, researcher)
    assert client.get(reverse("rewardtrain:run_detail", args=[other_project.slug, run.pk])).status_code == 404


@pytest.mark.django_db
def test_researcher_sees_step_loss_throughput_eta_and_the_loss_curve(
    client, project, run, researcher, settings
):
    settings.CROSS_PROCESS_CHANNELS = False
    login(client, researcher)
    page = client.get(reverse("rewardtrain:run_detail", args=[project.slug, run.pk])).content.decode()
    assert "30 / 120" in page and "0.4321" in page and "55.5" in page and "90 s" in page
    assert "<polyline points=" in page
    # The chart has axes with units: ticks for steps and losses, and both axis titles.
    assert ">Optimizer step</text>" in page and ">Loss (nats)</text>" in page
    assert page.count('class="x-tick"') == 3 and page.count('class="y-tick"') == 3
    assert 'hx-trigger="every 2s"' in page and "run-live.js" not in page  # polling without a shared layer
    settings.CROSS_PROCESS_CHANNELS = True
    page = client.get(reverse("rewardtrain:run_detail", args=[project.slug, run.pk])).content.decode()
    assert 'hx-trigger="run-refresh"' in page and "run-live.js" in page  # pushed over the websocket
    partial = client.get(
        reverse("rewardtrain:run_detail", args=[project.slug, run.pk]), headers={"HX-Request": "true"}
    ).content.decode()
    assert partial.lstrip().startswith('<section id="run-progress"') and "<html" not in partial


@pytest.mark.django_db
def test_a_succeeded_run_shows_no_stale_error(client, project, run, researcher):
    TrainingRun.objects.filter(pk=run.pk).update(status="failed", error="worker lost")
    login(client, researcher)
    url = reverse("rewardtrain:run_detail", args=[project.slug, run.pk])
    assert "worker lost" in client.get(url).content.decode()
    TrainingRun.objects.filter(pk=run.pk).update(status="succeeded")  # a retry finished it
    assert "worker lost" not in client.get(url).content.decode()


@pytest.mark.django_db
def test_admin_cancels_a_running_run(client, project, run, admin_user):
    login(client, admin_user)
    response = client.post(reverse("rewardtrain:run_cancel", args=[project.slug, run.pk]))
    assert response.status_code == 302
    run.refresh_from_db()
    assert run.cancel_requested and run.status == "running"  # the runner stops the trainer and ends it
    assert AuditEvent.objects.filter(action="training.cancel", target_id=str(run.pk)).exists()


@pytest.mark.django_db
def test_researcher_starts_a_run_on_a_fresh_snapshot_from_the_page(client, project, researcher):
    voter = crowd_annotator(project, "crowd")
    for i in range(3):
        add_judgment(make_comparison(project, f"Q{i}", f"x {RUDE}", f"y {HELPFUL}"), voter, preference=2)
    login(client, researcher)
    form = {"objective": "bt", "base_model": "/models/base", "queue": "cpu", "epochs": 1, "lr": 1e-4}
    form |= {"batch_size": 8, "max_length": 64, "seed": 1, "snapshot": "", "checkpoint_every": 5}
    page = client.get(reverse("rewardtrain:run_new", args=[project.slug])).content.decode()
    assert 'name="checkpoint_every"' in page and "Checkpoint interval" in page
    response = client.post(reverse("rewardtrain:run_new", args=[project.slug]), form)
    run = TrainingRun.objects.get()
    assert response.status_code == 302 and response["Location"].endswith(f"/runs/{run.pk}/")
    assert run.created_by == researcher and run.queue == "cpu" and run.config["lr"] == 1e-4
    assert run.config["checkpoint_every"] == 5
    assert run.snapshot is None  # frozen by the run's worker, not in the request
    snapshot = runner.freeze_for_run(run)
    run.refresh_from_db()
    assert run.snapshot == snapshot and snapshot.pairs.count() == 3 and snapshot.axis == "overall"
    assert AuditEvent.objects.filter(action="training.launch", actor=researcher).exists()


@pytest.mark.django_db
def test_start_page_offers_the_training_modes_and_the_run_keeps_the_choice(client, project, researcher):
    voter = crowd_annotator(project, "crowd")
    add_judgment(make_comparison(project, "Q", f"x {RUDE}", f"y {HELPFUL}"), voter, preference=2)
    login(client, researcher)
    page = client.get(reverse("rewardtrain:run_new", args=[project.slug])).content.decode()
    for mode in ("full", "lora-merged", "lora-adapters", "fsdp"):
        assert f'value="{mode}"' in page
    form = {"objective": "bt", "base_model": "/models/base", "queue": "gpu", "epochs": 1, "lr": 1e-4}
    form |= {"batch_size": 8, "max_length": 64, "seed": 1, "snapshot": ""}
    client.post(
        reverse("rewardtrain:run_new", args=[project.slug]), form | {"mode": "lora-adapters", "lora_r": 8}
    )
    client.post(reverse("rewardtrain:run_new", args=[project.slug]), form | {"mode": "fsdp", "lora_r": 8})
    lora, fsdp = TrainingRun.objects.order_by("pk")
    assert lora.config["mode"] == "lora-adapters" and lora.config["lora_r"] == 8
    assert fsdp.config["mode"] == "fsdp" and "lora_r" not in fsdp.config  # the rank means nothing there
    page = client.get(reverse("rewardtrain:run_detail", args=[project.slug, fsdp.pk])).content.decode()
    assert "fsdp" in page and "MFU" in page


@pytest.mark.django_db
def test_start_page_shows_the_error_and_starts_nothing_without_pairs(client, project, researcher):
    login(client, researcher)
    form = {"objective": "cost", "base_model": "/models/base", "queue": "gpu", "epochs": 1, "lr": 1e-4}
    form |= {"batch_size": 8, "max_length": 64, "seed": 1, "snapshot": ""}
    response = client.post(reverse("rewardtrain:run_new", args=[project.slug]), form)
    assert response.status_code == 200 and "no consensus pairs" in response.content.decode()
    assert not TrainingRun.objects.exists()


@pytest.mark.django_db
def test_researcher_activates_a_model_from_the_registry(client, project, researcher):
    version = finished_version(project, "bt")
    login(client, researcher)
    assert (
        f"#{version.pk}"
        in client.get(reverse("rewardtrain:model_list", args=[project.slug])).content.decode()
    )
    client.post(reverse("rewardtrain:model_activate", args=[project.slug, version.pk]))
    assert ModelVersion.objects.get(pk=version.pk).is_active


@pytest.mark.django_db
def test_evaluation_page_refuses_generic_and_scores_an_upload(client, project, researcher):
    version = finished_version(project, "bt")
    login(client, researcher)
    url = reverse("rewardtrain:evaluate_new", args=[project.slug, version.pk])
    generic = SimpleUploadedFile("g.jsonl", b'{"prompt": "Hi", "responses": ["a", "b"]}\n')
    response = client.post(url, {"format": "generic", "file": generic})
    assert response.status_code == 200 and "carry no preference label" in response.content.decode()
    assert not EvaluationJob.objects.exists()

    lines = [
        {"prompt": f"Tell me about rivers ({i}).", "chosen": f"river {HELPFUL}", "rejected": f"river {RUDE}"}
        for i in range(6)
    ]
    upload = SimpleUploadedFile("pairs.jsonl", "".join(json.dumps(x) + "\n" for x in lines).encode())
    response = client.post(url, {"format": "trl", "file": upload})
    job = EvaluationJob.objects.get()
    assert response.status_code == 302 and response["Location"].endswith(f"/evaluations/{job.pk}/")
    assert evaluation.run_job(job.pk) == "succeeded"  # what the background task runs
    page = client.get(response["Location"]).content.decode()
    assert "Accuracy" in page and job.filename in page and "every 2s" not in page


async def _connect(run_id: int, user) -> tuple[ApplicationCommunicator, dict]:
    scope = {
        "type": "websocket",
        "path": f"/ws/runs/{run_id}/",
        "headers": [],
        "query_string": b"",
        "subprotocols": [],
        "user": user,
    }
    communicator = ApplicationCommunicator(URLRouter(websocket_urlpatterns), scope)
    await communicator.send_input({"type": "websocket.connect"})
    return communicator, await communicator.receive_output(5)


@pytest.mark.django_db(transaction=True)
def test_websocket_pushes_progress_to_members_and_refuses_others(project, run, researcher, annotator):
    async def scenario() -> tuple[dict, dict, dict]:
        member, accepted = await _connect(run.pk, researcher)
        await get_channel_layer().group_send(f"run.{run.pk}", {"type": "run.progress", "run_id": run.pk})
        message = await member.receive_output(5)
        await member.send_input({"type": "websocket.disconnect", "code": 1000})
        await member.wait(5)
        stranger, refused = await _connect(run.pk, annotator)
        await stranger.wait(5)
        return accepted, message, refused

    accepted, message, refused = async_to_sync(scenario)()
    assert accepted["type"] == "websocket.accept"
    assert json.loads(message["text"]) == {"type": "progress", "run": run.pk}
    assert refused["type"] == "websocket.close" and refused["code"] == 4404


@pytest.mark.django_db(transaction=True)
def test_runner_progress_reaches_a_real_browser_socket_across_processes(
    client, project, run, researcher, tmp_path
):
    require_redis()
    server, base = start_asgi(tmp_path)
    try:
        login(client, researcher)
        headers = {"Cookie": f"sessionid={client.cookies['sessionid'].value}", "Origin": base}
        url = base.replace("http://", "ws://") + f"/ws/runs/{run.pk}/"

        async def scenario() -> dict:
            async with websockets.connect(url, additional_headers=headers) as socket:
                # What the runner does after each progress write, from this (another) process.
                await asyncio.to_thread(runner.notify, run.pk)
                return json.loads(await asyncio.wait_for(socket.recv(), 10))

        assert asyncio.run(scenario()) == {"type": "progress", "run": run.pk}
    finally:
        server.stop()


@pytest.mark.django_db
def test_project_page_links_training_for_researchers_only(client, project, researcher, annotator):
    url = reverse("project_detail", args=[project.slug])
    login(client, researcher)
    page = client.get(url).content.decode()
    assert reverse("rewardtrain:run_list", args=[project.slug]) in page
    assert reverse("rewardtrain:model_list", args=[project.slug]) in page
    login(client, annotator)
    assert reverse("rewardtrain:run_list", args=[project.slug]) not in client.get(url).content.decode()
