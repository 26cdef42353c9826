"""Rubric ownership (issue 19): a rubric belongs to its author and the projects it is shared with; other
authors may read and copy it, not change it (403, nothing changed)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from projects.models import Membership
from rubrics.models import Rubric

from .conftest import build_rubric

pytestmark = pytest.mark.django_db


def change_urls(version) -> list[tuple[str, dict]]:
    r, n = version.rubric_id, version.number
    c = version.criteria.first()
    return [
        (reverse("rubric_detail", args=[r]), {"name": "Hijacked"}),
        (
            reverse("rubric_criterion_add", args=[r, n]),
            {"text": "x", "category": "optional", "answer_type": "yes_no"},
        ),
        (reverse("rubric_criterion_edit", args=[c.pk]), {"text": "changed", "category": "optional"}),
        (reverse("rubric_criterion_delete", args=[c.pk]), {}),
        (reverse("rubric_criterion_move", args=[c.pk]), {"direction": "down"}),
        (reverse("rubric_reorder", args=[r, n]), {"key": ["c2", "c1"]}),
        (reverse("rubric_publish", args=[r, n]), {}),
        (reverse("rubric_discard", args=[r, n]), {}),
        (reverse("rubric_share", args=[r]), {"project": []}),
    ]


def test_another_researcher_may_read_and_copy_but_not_change(client, researcher, outsider):
    draft = build_rubric("Researcher's", publish=False, user=researcher)
    client.force_login(outsider)  # a researcher on another project
    page = client.get(reverse("rubric_version", args=[draft.rubric_id, draft.number]))
    assert page.status_code == 200 and b'id="not-yours"' in page.content
    for url, data in change_urls(draft):
        assert client.post(url, data).status_code == 403, url
    draft.refresh_from_db()
    assert draft.status == "draft" and draft.criteria.count() == 4
    assert Rubric.objects.get(pk=draft.rubric_id).name == "Researcher's"

    resp = client.post(reverse("rubric_copy", args=[draft.rubric_id]))
    copy = Rubric.objects.exclude(pk=draft.rubric_id).get()
    assert copy.created_by == outsider and copy.name == "Copy of Researcher's"
    version = copy.versions.get()
    assert resp["Location"] == reverse("rubric_version", args=[copy.pk, version.number])
    assert list(version.criteria.values_list("key", flat=True)) == ["c1", "c2", "c3", "c4"]
    # The copy is theirs to change.
    assert client.post(reverse("rubric_publish", args=[copy.pk, version.number])).status_code == 302


def test_the_author_and_the_researchers_of_shared_projects_change_it(
    client, researcher, outsider, other_project
):
    draft = build_rubric("Shared", publish=False, user=outsider)
    add = reverse("rubric_criterion_add", args=[draft.rubric_id, draft.number])
    new = {"text": "New one", "category": "optional", "answer_type": "yes_no"}
    client.force_login(researcher)
    assert client.post(add, new).status_code == 403
    client.force_login(outsider)  # the author shares it with their project, other_project
    share = reverse("rubric_share", args=[draft.rubric_id])
    assert client.post(share, {"project": [other_project.pk]}).status_code == 302
    assert list(Rubric.objects.get(pk=draft.rubric_id).shared_with.all()) == [other_project]
    assert client.post(add, new).status_code == 302
    # A researcher of the shared project may change it too.
    Membership.objects.create(user=researcher, project=other_project, role=Membership.Role.RESEARCHER)
    client.force_login(researcher)
    assert client.post(add, new | {"text": "Another"}).status_code == 302
    assert draft.criteria.count() == 6


def test_admins_change_any_rubric(client, admin_user, researcher):
    draft = build_rubric("Theirs", publish=False, user=researcher)
    client.force_login(admin_user)
    assert client.post(reverse("rubric_publish", args=[draft.rubric_id, draft.number])).status_code == 302
