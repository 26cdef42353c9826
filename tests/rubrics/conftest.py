from __future__ import annotations

import pytest

from rubrics import services

CRITERIA = [
    {"text": "Answers the question", "category": "essential"},
    {"text": "Cites a source", "category": "important", "answer_type": "yes_no_na"},
    {"text": "Is concise", "category": "optional"},
    {"text": "Makes something up", "category": "pitfall"},
]


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Personas are created with passwords; these tests log in with force_login, so hashing cost is waste."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def build_rubric(name: str = "Helpfulness", *, publish: bool = True, user=None, criteria=CRITERIA):
    rubric = services.rubric_create(name=name, description="How helpful is it?", user=user)
    version = rubric.versions.get()
    for c in criteria:
        services.criterion_add(version=version, **c)
    if publish:
        version = services.version_publish(version=version, user=user)
    return version


@pytest.fixture
def draft_version(db):
    return build_rubric(publish=False)


@pytest.fixture
def published_version(db):
    return build_rubric(publish=True)
