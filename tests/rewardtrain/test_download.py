"""Model download: a model version's folder as .tar.gz through a signed, expiring link (page and API)."""

from __future__ import annotations

import io
import shutil
import tarfile
import time
from pathlib import Path

import pytest
import torch
from django.core import signing
from django.test import Client
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from projects.api_auth import create_token
from projects.models import AuditEvent, Membership
from rewardtrain import downloads, registry
from rewardtrain.models import ModelVersion
from tests.rewardtrain.apphelpers import finished_version, trained_model_dir

TEXTS = [
    "Human: How do I bake bread?\n\nAssistant: Mix flour, water and yeast.",
    "Human: Hi\n\nAssistant: Go away.",
]


def _fetch(url: str) -> bytes:
    """The archive, fetched by a client with no session (the link is the credential)."""
    response = Client().get(url)
    assert response.status_code == 200, response.status_code
    assert response["Content-Type"] == "application/gzip"
    assert response["Content-Disposition"].endswith('.tar.gz"')
    return b"".join(response.streaming_content)


def _scores(folder: str | Path) -> list[float]:
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModelForSequenceClassification.from_pretrained(str(folder), dtype=torch.float32).eval()
    with torch.no_grad():
        batch = tokenizer(TEXTS, return_tensors="pt", padding=True, truncation=True)
        return model(**batch).logits[:, 0].tolist()


def _link_on_page(client: Client, version: ModelVersion) -> str:
    page = client.get(f"/p/{version.project.slug}/models/").content.decode()
    start = page.index("/models/download/")
    return page[start : page.index('"', start)]


def _registered(project, folder: Path) -> ModelVersion:
    """A finished version whose folder (a copy of the trained toy) carries the registry's model card."""
    shutil.copytree(trained_model_dir(), folder)
    version = finished_version(project, path=str(folder))
    (folder / registry.CARD_FILE).write_text(registry.model_card(version.run, version.metrics))
    return version


@pytest.mark.django_db
def test_download_from_the_page_is_the_saved_model_and_scores_the_same(client, project, researcher, tmp_path):
    version = _registered(project, tmp_path / "saved")
    client.force_login(researcher)
    archive = _fetch(_link_on_page(client, version))

    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        names = tar.getnames()
        tar.extractall(tmp_path / "out", filter="data")
    root = tmp_path / "out" / downloads.archive_name(version)
    saved = Path(version.path)
    expected = sorted(p.relative_to(saved).as_posix() for p in saved.rglob("*") if p.is_file())
    assert sorted(n.split("/", 1)[1] for n in names) == expected
    assert "README.md" in expected and "config.json" in expected  # the model card travels with the weights
    for rel in expected:
        assert (root / rel).read_bytes() == (saved / rel).read_bytes(), rel
    assert _scores(root) == pytest.approx(_scores(saved), abs=0.0)
    event = AuditEvent.objects.get(action="model.download")
    assert (event.actor, event.project, event.target_id) == (researcher, project, str(version.pk))


@pytest.mark.django_db
def test_download_through_the_api_with_a_token(client, project, researcher):
    version = finished_version(project)
    auth = {"Authorization": f"Bearer {create_token(user=researcher, name='t')[1]}"}
    out = client.get(f"/api/models/{version.pk}/download", headers=auth).json()
    assert out["filename"] == f"{downloads.archive_name(version)}.tar.gz"
    assert out["expires_at"] > time.strftime("%Y-%m-%d")
    archive = _fetch(out["url"])
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        assert f"{downloads.archive_name(version)}/config.json" in tar.getnames()


@pytest.mark.django_db
def test_only_researchers_and_admins_of_the_project_get_a_link(
    client, project, researcher, annotator, admin_user, outsider
):
    version = finished_version(project)
    for user, status in ((annotator, 404), (outsider, 404), (researcher, 200), (admin_user, 200)):
        auth = {"Authorization": f"Bearer {create_token(user=user, name='t')[1]}"}
        assert client.get(f"/api/models/{version.pk}/download", headers=auth).status_code == status, user
        client.force_login(user)
        assert client.get(f"/p/{project.slug}/models/").status_code == status, user
    assert client.get(f"/api/models/{version.pk}/download").status_code == 401


@pytest.mark.django_db
def test_a_link_stops_working_when_its_user_loses_the_role_or_it_is_tampered_with(
    client, project, researcher
):
    version = finished_version(project)
    token = downloads.download_token(version, researcher)
    url = f"/models/download/{token}/"
    assert Client().get(url).status_code == 200
    assert Client().get(f"/models/download/{token[:-2]}xx/").status_code == 404
    Membership.objects.filter(user=researcher, project=project).update(role=Membership.Role.ANNOTATOR)
    assert Client().get(url).status_code == 404
    assert AuditEvent.objects.filter(action="model.download").count() == 1  # refused uses record nothing


class _PastSigner(signing.TimestampSigner):
    """Signs as if it were two hours ago (the signer's documented `timestamp()` hook)."""

    def timestamp(self) -> str:
        return signing.b62_encode(int(time.time()) - 2 * 3600)


@pytest.mark.django_db
def test_an_expired_link_is_refused(project, researcher, settings):
    settings.ARBITER_MODEL_LINK_SECONDS = 3600
    version = finished_version(project)
    old = _PastSigner(salt=downloads.LINK_SALT).sign_object({"version": version.pk, "user": researcher.pk})
    assert Client().get(f"/models/download/{old}/").status_code == 404
    settings.ARBITER_MODEL_LINK_SECONDS = 3 * 3600
    assert Client().get(f"/models/download/{old}/").status_code == 200


@pytest.mark.django_db
def test_a_missing_folder_gives_no_link_and_a_clear_404(client, project, researcher):
    version = finished_version(project, path="/nonexistent/model")
    client.force_login(researcher)
    assert "/models/download/" not in client.get(f"/p/{project.slug}/models/").content.decode()
    token = downloads.download_token(version, researcher)
    response = Client().get(f"/models/download/{token}/")
    assert response.status_code == 404


def test_the_archive_streams_in_chunks_and_is_a_valid_tar(tmp_path):
    folder = tmp_path / "m"
    (folder / "sub").mkdir(parents=True)
    (folder / "big.bin").write_bytes(bytes(range(256)) * 20_000)  # 5 MiB: several chunks
    (folder / "sub" / "empty.txt").write_bytes(b"")
    (folder / ".README.md.tmp-1").write_text("half-written card")  # the registry's temporary file: left out
    chunks = list(downloads.tar_gz_chunks(folder, "root"))
    assert max(len(c) for c in chunks) < 2 * downloads.CHUNK_BYTES
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks)), mode="r:gz") as tar:
        assert tar.getnames() == ["root/big.bin", "root/sub/empty.txt"]
        assert tar.extractfile("root/big.bin").read() == (folder / "big.bin").read_bytes()
        assert tar.extractfile("root/sub/empty.txt").read() == b""
