"""The workbench page: questions by project settings, keyboard shortcuts on screen, blur, guidelines, rubric slot."""

from __future__ import annotations

import pytest
from django.urls import reverse

from projects.models import Membership
from tests.factories import make_comparison, make_comparisons

pytestmark = pytest.mark.django_db


def page(client, project):
    return client.get(reverse("workbench", args=[project.slug])).content.decode()


def test_page_shows_conversation_both_responses_and_every_question(client, project, annotator):
    make_comparison(
        project,
        prompt=[
            {"role": "user", "content": "What is 2+2?"},
            {"role": "assistant", "content": "Why?"},
            {"role": "user", "content": "Homework."},
        ],
        a="It is **4**.",
        b="Five.",
    )
    client.force_login(annotator)
    body = page(client, project)
    assert body.count('class="turn') == 3
    assert "<strong>4</strong>" in body and "Five." in body
    for name in ("preference", "helpfulness", "harmlessness", "left_safe", "right_safe", "justification"):
        assert f'name="{name}"' in body
    assert body.count('name="left_harm_categories"') == len(project.harm_categories) == 14
    # Shortcuts are on screen.
    for key in ("1–7", "q / w / e", "a / s / d", "z / x", "n / m", "Shift+S", "Enter"):
        assert key in body
    assert "Done today" in body and "Left for you" in body


def test_questions_follow_the_project_settings(client, project, annotator):
    project.ask_helpful_harmless = False
    project.ask_safety = False
    project.justification = "hidden"
    project.save()
    make_comparisons(project, 1)
    client.force_login(annotator)
    body = page(client, project)
    assert 'name="preference"' in body
    for absent in ('name="helpfulness"', 'name="left_safe"', 'name="justification"'):
        assert absent not in body


def test_blurred_project_shows_a_content_warning(client, project, annotator):
    project.blur_content = True
    project.content_warning = "Contains descriptions of violence."
    project.save()
    make_comparisons(project, 1)
    client.force_login(annotator)
    body = page(client, project)
    assert "responses blurred" in body and "Contains descriptions of violence." in body


def test_guidelines_markdown_is_on_the_page(client, project, annotator):
    project.guidelines = "# Rules\n\nPrefer **honest** answers. <script>x()</script>"
    project.save()
    make_comparisons(project, 1)
    client.force_login(annotator)
    body = page(client, project)
    assert "<strong>honest</strong>" in body and "<script>x()" not in body


def test_paused_membership_sees_why(client, project, annotator):
    make_comparisons(project, 1)
    Membership.objects.filter(user=annotator).update(paused_reason="please re-read the guidelines")
    client.force_login(annotator)
    assert "please re-read the guidelines" in page(client, project)


def test_nothing_left_says_so(client, project, annotator):
    client.force_login(annotator)
    assert "All done" in page(client, project)


def test_project_page_links_to_labelling(client, project, annotator, researcher):
    client.force_login(annotator)
    body = client.get(reverse("project_detail", args=[project.slug])).content.decode()
    assert reverse("workbench", args=[project.slug]) in body
    assert reverse("workbench_controls", args=[project.slug]) not in body
    client.force_login(researcher)
    body = client.get(reverse("project_detail", args=[project.slug])).content.decode()
    assert reverse("workbench_controls", args=[project.slug]) in body


def test_rubric_slot_renders_nothing_without_a_rubric(client, project, annotator):
    make_comparisons(project, 1)
    client.force_login(annotator)
    assert "rubric" not in page(client, project).lower().replace("rubric checklist slot", "")
