"""Pushing items through the API runs the importers: good files commit, bad files report lines and change nothing."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from annotate.models import Comparison
from projects.api_auth import create_token

GOOD = (
    b'{"prompt": "Say hi", "chosen": "Hi!", "rejected": "Go away."}\n'
    b'{"prompt": "Say bye", "chosen": "Bye!", "rejected": "Whatever."}\n'
)
BAD = GOOD + b'{"prompt": "x", "chosen": 3}\n'


@pytest.fixture(autouse=True)
def imports_dir(settings, tmp_path):
    settings.ARBITER_IMPORTS_DIR = tmp_path


def push(client, user, project, body: bytes, **query):
    token = create_token(user=user, name="t")[1]
    params = "&".join(f"{k}={v}" for k, v in {"format": "trl", **query}.items())
    return client.post(
        f"/api/projects/{project.slug}/items?{params}",
        {"file": SimpleUploadedFile("pairs.jsonl", body)},
        headers={"Authorization": f"Bearer {token}"},
    )


def test_admin_pushes_a_file(client, project, admin_user):
    response = push(client, admin_user, project, GOOD)
    assert response.status_code == 200, response.content
    assert response.json()["comparisons_created"] == 2
    assert Comparison.objects.filter(project=project).count() == 2


def test_a_bad_line_is_reported_and_nothing_changes(client, project, admin_user):
    response = push(client, admin_user, project, BAD)
    assert response.status_code == 400
    errors = response.json()["report"]["errors"]
    assert [e["line"] for e in errors] == [3]
    assert not Comparison.objects.filter(project=project).exists()
    skipped = push(client, admin_user, project, BAD, skip_invalid="true")
    assert skipped.status_code == 200 and skipped.json()["bad_lines"] == 1
    assert Comparison.objects.filter(project=project).count() == 2


def test_researchers_cannot_push(client, project, researcher):
    assert push(client, researcher, project, GOOD).status_code == 404
    assert not Comparison.objects.exists()
