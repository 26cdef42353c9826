"""Markup in data is rendered inert everywhere: script tags, event-handler attributes, javascript: links and
attribute break-outs put into prompts, responses, justifications, rubric criteria, guidelines, annotator names
and item criteria never reach a page as live HTML (workbench, dashboards, browser, rubric pages, Django admin)."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from annotate.models import Assignment, Judgment
from rubrics import services as rubric_services
from tests.factories import add_judgment, crowd_annotator, make_comparison

PAYLOADS = [
    "<script>window.__pwned=1</script>",
    "<img src=x onerror=alert(1)>",
    "[x](javascript:alert(1))",
    '"><svg onload=alert(1)>',
]
HOSTILE = " ".join(PAYLOADS)

pytestmark = pytest.mark.django_db


class LiveMarkup(HTMLParser):
    """Collects every way the payloads could have come alive in a page."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.leaks: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name.startswith("on") and value and "alert(1)" in value:
                self.leaks.append(f"<{tag} {name}={value}>")
            if (
                name in ("href", "src", "action", "formaction")
                and value
                and value.strip().lower().startswith("javascript:")
            ):
                self.leaks.append(f"<{tag} {name}={value}>")
        if tag in ("svg", "img") and any(n in ("onload", "onerror") for n, _ in attrs):
            self.leaks.append(f"<{tag} {attrs}>")
        # a data block (json_script: type="application/json", `<` escaped as \u003C) never executes
        script_type = dict(attrs).get("type") or "text/javascript"
        self._in_script = tag == "script" and "json" not in script_type

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script and "__pwned" in data:
            self.leaks.append(f"<script>{data}</script>")


def assert_inert(response, where: str) -> None:
    assert response.status_code == 200, (where, response.status_code)
    html = response.content.decode()
    assert "<script>window.__pwned" not in html, where
    parser = LiveMarkup()
    parser.feed(html)
    assert not parser.leaks, (where, parser.leaks)


@pytest.fixture
def hostile_world(project, annotator, researcher):
    project.guidelines = f"# Guidelines\n\n{HOSTILE}"
    project.save()
    version = rubric_services.rubric_create(name=f"Rubric {HOSTILE}", description=HOSTILE).versions.get()
    rubric_services.criterion_add(version=version, text=f"Criterion {HOSTILE}", guidance=f"Guide {HOSTILE}")
    version = rubric_services.version_publish(version=version, user=researcher)
    draft = rubric_services.draft_from(version=version, user=researcher)
    rubric_services.criterion_add(version=draft, text=f"Second {HOSTILE}", guidance=HOSTILE)
    rubric_services.project_pin_version(project=project, version=version, user=researcher)
    judged = make_comparison(project, f"Prompt {HOSTILE}", f"Left {HOSTILE}", f"Right {HOSTILE}")
    criteria, problems = rubric_services.validate_item_criteria(
        [{"id": "c1", "text": f"Item criterion {HOSTILE}", "category": "essential", "guidance": HOSTILE}]
    )
    assert not problems
    judged.item.criteria = criteria
    judged.item.save()
    make_comparison(project, f"Next prompt {HOSTILE}", f"A {HOSTILE}", f"B {HOSTILE}")
    crowd = crowd_annotator(project, f"crowd {HOSTILE}")
    add_judgment(judged, crowd, preference=-1, justification=f"Because {HOSTILE}")
    mine = crowd_annotator(project, annotator.username, user=annotator)
    judgment = add_judgment(judged, mine, preference=2, justification=f"Mine {HOSTILE}")
    judgment.assignment = Assignment.objects.create(
        project=project, comparison=judged, annotator=mine, status=Assignment.Status.SUBMITTED
    )
    judgment.save(update_fields=["assignment"])
    return {"comparison": judged, "crowd": crowd, "judgment": judgment, "version": version, "draft": draft}


def test_annotator_pages_render_the_payloads_inert(client, project, annotator, hostile_world):
    client.force_login(annotator)
    slug = project.slug
    for name, kwargs in [
        ("workbench", {"slug": slug}),
        ("workbench_history", {"slug": slug}),
        ("workbench_guidelines", {"slug": slug}),
        ("workbench_revise", {"slug": slug, "judgment_id": hostile_world["judgment"].pk}),
        ("project_detail", {"slug": slug}),
    ]:
        response = client.get(reverse(name, kwargs=kwargs))
        assert_inert(response, name)
    workbench = client.get(reverse("workbench", kwargs={"slug": slug})).content.decode()
    assert "&lt;script&gt;window.__pwned" in workbench  # shown as text, not dropped


def test_research_pages_render_the_payloads_inert(client, project, researcher, hostile_world):
    client.force_login(researcher)
    slug = project.slug
    version, draft = hostile_world["version"], hostile_world["draft"]
    pages = [
        ("dashboard", {"slug": slug}),
        ("annotator_detail", {"slug": slug, "annotator_id": hostile_world["crowd"].pk}),
        ("comparison_list", {"slug": slug}),
        ("comparison_detail", {"slug": slug, "comparison_id": hostile_world["comparison"].pk}),
        ("adjudicate", {"slug": slug}),
        ("margins", {"slug": slug}),
        ("project_rubric", {"slug": slug}),
        ("rubric_list", {}),
        ("rubric_detail", {"pk": version.rubric_id}),
        ("rubric_version", {"pk": version.rubric_id, "number": version.number}),
        ("rubric_version", {"pk": draft.rubric_id, "number": draft.number}),
        ("rubric_diff", {"pk": version.rubric_id}),
        ("rubric_preview", {"pk": version.rubric_id, "number": version.number, "slug": slug}),
    ]
    for name, kwargs in pages:
        assert_inert(client.get(reverse(name, kwargs=kwargs)), f"{name} {kwargs}")
    diff = reverse("rubric_diff", kwargs={"pk": version.rubric_id})
    assert_inert(client.get(f"{diff}?a={version.number}&b={draft.number}"), "rubric_diff a/b")


def test_django_admin_pages_render_the_payloads_inert(project, hostile_world):
    root = User.objects.create_superuser("root", password="not-used-here-1")
    client = Client()
    client.force_login(root)
    judgment = Judgment.objects.filter(justification__contains="Because").get()
    comparison = hostile_world["comparison"]
    criterion = hostile_world["version"].criteria.first()
    for url in [
        "/admin/annotate/judgment/",
        f"/admin/annotate/judgment/{judgment.pk}/change/",
        "/admin/annotate/item/",
        f"/admin/annotate/item/{comparison.item_id}/change/",
        "/admin/annotate/response/",
        f"/admin/annotate/response/{comparison.response_a_id}/change/",
        "/admin/projects/annotator/",
        f"/admin/projects/annotator/{hostile_world['crowd'].pk}/change/",
        "/admin/rubrics/rubric/",
        f"/admin/rubrics/rubric/{hostile_world['version'].rubric_id}/change/",
        "/admin/rubrics/rubricversion/",
        f"/admin/rubrics/rubricversion/{criterion.version_id}/change/",
    ]:
        assert_inert(client.get(url), url)
