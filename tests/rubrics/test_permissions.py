"""Who may author: researchers (on any project) and admins. Annotators and outsiders to a project get 404;
anonymous users go to the login page."""

from __future__ import annotations

import pytest
from django.urls import reverse

from rubrics import services
from rubrics.models import Rubric
from tests.factories import add_judgment, crowd_annotator, make_comparison

from .conftest import build_rubric


@pytest.fixture
def urls(db):
    draft = build_rubric("Drafty", publish=False)
    published = build_rubric("Done")
    c = draft.criteria.first()
    r, n = draft.rubric_id, draft.number
    return {
        "get": [
            reverse("rubric_list"),
            reverse("rubric_detail", args=[r]),
            reverse("rubric_version", args=[r, n]),
            reverse("rubric_diff", args=[published.rubric_id]),
            reverse("rubric_export", args=[r, n]) + "?format=yaml",
            reverse("rubric_criterion_edit", args=[c.pk]),
        ],
        "post": [
            (reverse("rubric_list"), {"name": "Mine"}),
            (
                reverse("rubric_criterion_add", args=[r, n]),
                {"text": "x", "category": "optional", "answer_type": "yes_no"},
            ),
            (reverse("rubric_criterion_delete", args=[c.pk]), {}),
            (reverse("rubric_criterion_move", args=[c.pk]), {"direction": "down"}),
            (reverse("rubric_publish", args=[r, n]), {}),
            (reverse("rubric_new_draft", args=[published.rubric_id, 1]), {}),
        ],
        "draft": draft,
    }


def test_anonymous_users_are_sent_to_login(client, urls):
    for url in urls["get"]:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/login/"), url
    for url, data in urls["post"]:
        assert client.post(url, data).status_code == 302


@pytest.mark.parametrize("persona", ["annotator", "plain_user"])
def test_non_authors_get_404_everywhere_and_change_nothing(client, urls, persona, request, django_user_model):
    user = (
        request.getfixturevalue("annotator")
        if persona == "annotator"
        else django_user_model.objects.create_user("nobody")
    )
    client.force_login(user)
    for url in urls["get"]:
        assert client.get(url).status_code == 404, url
    for url, data in urls["post"]:
        assert client.post(url, data).status_code == 404, url
    assert urls["draft"].criteria.count() == 4
    assert urls["draft"].status == "draft"
    assert not Rubric.objects.filter(name="Mine").exists()


@pytest.mark.parametrize("persona", ["researcher", "admin_user", "outsider"])
def test_researchers_anywhere_and_admins_author_rubrics(client, urls, persona, request):
    # A researcher on any project (the outsider researches another project) reads every rubric and authors
    # their own; only the owners (here admins: the rubric has no author) open a criterion's edit form.
    client.force_login(request.getfixturevalue(persona))
    for url in urls["get"]:
        expected = (200, 302) if persona == "admin_user" or "/edit/" not in url else (403,)
        assert client.get(url).status_code in expected, url
    assert client.post(reverse("rubric_list"), {"name": "Mine"}).status_code == 302
    assert Rubric.objects.filter(name="Mine").exists()


def test_pinning_a_version_needs_the_researcher_role_on_that_project(
    client, project, annotator, outsider, researcher
):
    version = build_rubric()
    url = reverse("project_rubric", args=[project.slug])
    for user in (annotator, outsider):
        client.force_login(user)
        assert client.get(url).status_code == 404
        assert client.post(url, {"version": version.pk}).status_code == 404
    project.refresh_from_db()
    assert project.rubric_version is None
    client.force_login(researcher)
    draft = build_rubric("Unfinished", publish=False)
    assert client.post(url, {"version": draft.pk}).status_code == 200  # the form refuses a draft
    project.refresh_from_db()
    assert project.rubric_version is None
    assert client.post(url, {"version": version.pk}).status_code == 302
    project.refresh_from_db()
    assert project.rubric_version == version


def test_preview_needs_the_researcher_role_on_the_project(client, project, outsider, researcher):
    version = build_rubric(publish=False)
    url = reverse("rubric_preview", args=[version.rubric_id, version.number, project.slug])
    client.force_login(outsider)  # an author, but not on this project
    assert client.get(url).status_code == 404
    client.force_login(researcher)
    assert client.get(url).status_code == 200


def test_rubric_page_shows_scores_only_from_projects_the_reader_researches(
    client, project, other_project, outsider, researcher
):
    version = build_rubric()
    services.project_pin_version(project=project, version=version, user=None)
    comparison = make_comparison(project)
    judgment = add_judgment(comparison, crowd_annotator(project, "x"), preference=-1)
    services.save_rubric_answers(
        judgment.revisions.get(), {"rubric": {"a": {"c1": "yes"}, "b": {"c1": "no"}}}
    )
    url = reverse("rubric_detail", args=[version.rubric_id])
    client.force_login(researcher)
    assert client.get(url).content.count(b"data-score-row") == 1
    client.force_login(outsider)
    assert client.get(url).content.count(b"data-score-row") == 0
