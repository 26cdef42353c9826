"""The authoring screens: htmx edits of a draft, publishing, new drafts, the difference page, import/export,
preview and the rubric page's scores."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from projects.models import AuditEvent
from rubrics import services
from rubrics.interchange import dump_rubric
from rubrics.models import Rubric
from tests.factories import add_judgment, crowd_annotator, make_comparison

from .conftest import build_rubric

HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def draft_version(researcher):
    """A draft of the logged-in author's own rubric (only its owners change a rubric)."""
    return build_rubric(publish=False, user=researcher)


@pytest.fixture
def author(client, researcher):
    client.force_login(researcher)
    return client


def keys(version):
    return list(version.criteria.order_by("position").values_list("key", flat=True))


def test_create_rubric_then_edit_criteria_without_reloading(author):
    response = author.post(reverse("rubric_list"), {"name": "Safety", "description": "Harm"})
    rubric = Rubric.objects.get(name="Safety")
    version = rubric.versions.get()
    assert response["Location"] == reverse("rubric_version", args=[rubric.pk, 1])
    add = reverse("rubric_criterion_add", args=[rubric.pk, 1])
    for text, category in [
        ("Refuses harm", "essential"),
        ("Explains why", "important"),
        ("Lectures", "pitfall"),
    ]:
        response = author.post(add, {"text": text, "category": category, "answer_type": "yes_no"}, **HX)
        assert response.status_code == 200
        assert b'<section id="criteria"' in response.content and b"<html" not in response.content
    assert keys(version) == ["c1", "c2", "c3"]
    assert list(version.criteria.order_by("position").values_list("weight", flat=True)) == [5, 3, -2]

    c3 = version.criteria.get(key="c3")
    form = author.get(reverse("rubric_criterion_edit", args=[c3.pk]), **HX)
    assert b'name="text"' in form.content and b"Lectures" in form.content
    response = author.post(
        reverse("rubric_criterion_edit", args=[c3.pk]),
        {"text": "Lectures the user", "category": "pitfall", "weight": "-1", "answer_type": "yes_no_na"},
        **HX,
    )
    assert b"Lectures the user" in response.content
    c3.refresh_from_db()
    assert (c3.weight, c3.answer_type) == (-1, "yes_no_na")

    author.post(reverse("rubric_criterion_move", args=[c3.pk]), {"direction": "up"}, **HX)
    assert keys(version) == ["c1", "c3", "c2"]
    author.post(reverse("rubric_reorder", args=[rubric.pk, 1]), {"key": ["c2", "c1", "c3"]}, **HX)
    assert keys(version) == ["c2", "c1", "c3"]
    author.post(reverse("rubric_criterion_delete", args=[version.criteria.get(key="c1").pk]), **HX)
    assert keys(version) == ["c2", "c3"]


def test_invalid_criterion_input_is_shown_and_changes_nothing(author, draft_version):
    url = reverse("rubric_criterion_add", args=[draft_version.rubric_id, 1])
    response = author.post(
        url, {"text": "Bad", "category": "essential", "weight": "-3", "answer_type": "yes_no"}, **HX
    )
    assert b"need a positive weight" in response.content
    response = author.post(
        reverse("rubric_reorder", args=[draft_version.rubric_id, 1]), {"key": ["c1"]}, **HX
    )
    assert b"exactly once" in response.content
    assert keys(draft_version) == ["c1", "c2", "c3", "c4"]


def test_plain_form_fallbacks_redirect_to_the_version_page(author, draft_version):
    page = reverse("rubric_version", args=[draft_version.rubric_id, 1])
    c2 = draft_version.criteria.get(key="c2")
    response = author.post(reverse("rubric_criterion_move", args=[c2.pk]), {"direction": "down"})
    assert response.status_code == 302 and response["Location"] == page
    edit = author.get(reverse("rubric_criterion_edit", args=[c2.pk]))
    assert edit["Location"].startswith(page + f"?edit={c2.pk}")
    assert b'name="text"' in author.get(page + f"?edit={c2.pk}").content


def test_publish_then_the_ui_cannot_change_it_and_editing_starts_a_new_draft(author, draft_version):
    rubric = draft_version.rubric
    author.post(reverse("rubric_publish", args=[rubric.pk, 1]))
    draft_version.refresh_from_db()
    assert draft_version.status == "published"
    assert AuditEvent.objects.filter(action="rubric.publish", target_id=str(draft_version.pk)).exists()
    page = author.get(reverse("rubric_version", args=[rubric.pk, 1])).content
    assert b"Add a criterion" not in page and b"Edit as a new draft" in page

    c1 = draft_version.criteria.get(key="c1")
    add = reverse("rubric_criterion_add", args=[rubric.pk, 1])
    assert (
        b"published"
        in author.post(add, {"text": "x", "category": "optional", "answer_type": "yes_no"}, **HX).content
    )
    assert author.get(reverse("rubric_criterion_edit", args=[c1.pk]), **HX).status_code == 404
    author.post(
        reverse("rubric_criterion_edit", args=[c1.pk]),
        {"text": "new", "category": "essential", "answer_type": "yes_no"},
        **HX,
    )
    author.post(reverse("rubric_criterion_delete", args=[c1.pk]), **HX)
    author.post(reverse("rubric_criterion_move", args=[c1.pk]), {"direction": "down"}, **HX)
    c1.refresh_from_db()
    assert (c1.text, c1.position, draft_version.criteria.count()) == ("Answers the question", 1, 4)

    response = author.post(reverse("rubric_new_draft", args=[rubric.pk, 1]))
    assert response["Location"] == reverse("rubric_version", args=[rubric.pk, 2])
    assert keys(rubric.versions.get(number=2)) == ["c1", "c2", "c3", "c4"]


def test_difference_page_lists_changes_by_key(author, published_version):
    draft = services.draft_from(version=published_version)
    services.criterion_delete(criterion=draft.criteria.get(key="c3"))
    services.criterion_update(criterion=draft.criteria.get(key="c1"), text="Answers fully")
    services.criterion_add(version=draft, text="Polite")
    html = author.get(reverse("rubric_diff", args=[draft.rubric_id]) + "?old=1&new=2").content.decode()
    assert 'data-key="c3" data-status="removed"' in html
    assert 'data-key="c5" data-status="added"' in html
    assert 'data-key="c1" data-status="changed"' in html and "Answers fully" in html
    assert 'data-key="c2" data-status="unchanged"' in html


def test_export_and_import_through_the_pages(author, published_version):
    response = author.get(reverse("rubric_export", args=[published_version.rubric_id, 1]) + "?format=yaml")
    assert response["Content-Type"].startswith("application/yaml")
    text = response.content.decode()
    assert text == dump_rubric(published_version, "yaml")
    upload = SimpleUploadedFile("copy.yaml", text.encode())
    response = author.post(reverse("rubric_import"), {"file": upload, "format": "auto"})
    copy = Rubric.objects.exclude(pk=published_version.rubric_id).get()
    assert response["Location"] == reverse("rubric_version", args=[copy.pk, 1])
    assert dump_rubric(copy.versions.get(), "yaml") == text

    bad = SimpleUploadedFile("bad.json", json.dumps({"name": "x", "criteria": [{"key": "k"}]}).encode())
    response = author.post(reverse("rubric_import"), {"file": bad, "format": "auto"}, follow=True)
    assert "bad.json: criteria[0].text: required" in response.content.decode()
    assert Rubric.objects.count() == 2


def test_preview_scores_a_draft_on_a_project_comparison_and_stores_nothing(author, project, draft_version):
    comparison = make_comparison(project, "Capital of France?", "Paris", "Lyon")
    url = reverse("rubric_preview", args=[draft_version.rubric_id, 1, project.slug])
    page = author.get(url).content.decode()
    assert 'name="rubric-a-c1"' in page and 'name="rubric-b-c4"' in page and "Capital of France?" in page
    answers = {
        "comparison": comparison.pk,
        "rubric-a-c1": "yes",
        "rubric-a-c2": "yes",
        "rubric-a-c3": "yes",
        "rubric-a-c4": "yes",
        "rubric-b-c1": "no",
        "rubric-b-c2": "na",
        "rubric-b-c3": "yes",
        "rubric-b-c4": "no",
    }
    html = author.post(url, answers, **HX).content.decode()
    # A: (5+3+1-2)/9 = 0.78; B: 1/(5+1) = 0.17, essential failed but already under the cap.
    assert "<dd data-preview-score-a>0.78</dd>" in html and "<dd data-preview-score-b>0.17</dd>" in html
    assert not comparison.judgments.exists()


def test_rubric_page_shows_scores_and_discrimination_from_criterion_answers(author, project):
    version = build_rubric()
    services.project_pin_version(project=project, version=version, user=None)
    yes_all = {"c1": "yes", "c2": "yes", "c3": "yes", "c4": "no"}
    weak = {"c1": "yes", "c2": "no", "c3": "yes", "c4": "yes"}
    for i, (preference, a, b) in enumerate([(-2, yes_all, weak), (1, yes_all, weak), (3, weak, yes_all)]):
        comparison = make_comparison(project, f"Prompt {i}", "A", "B")
        judgment = add_judgment(comparison, crowd_annotator(project, f"ann{i}"), preference=preference)
        services.save_rubric_answers(judgment.revisions.get(), {"rubric": {"a": a, "b": b}})
    html = author.get(reverse("rubric_detail", args=[version.rubric_id])).content.decode()
    assert html.count("data-score-row") == 3
    # yes_all: 9/9 = 1.00; weak: (5+1-2)/9 = 0.44. Agreement: judgments 1 and 3 agree, 2 does not → 67%.
    assert "<td data-score-a>1.00</td><td data-score-b>0.44</td>" in html
    assert "<dd data-agreement>67%</dd>" in html
    assert html.count("<td data-agrees>yes</td>") == 2 and html.count("<td data-agrees>no</td>") == 1
    assert html.count("never discriminates") == 2  # c1 and c3
    assert html.count("always discriminates") == 2  # c2 and c4
