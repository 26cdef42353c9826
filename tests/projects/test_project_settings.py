"""Project pages and commands (issue 19): create a project, change every setting with validation and a
preview, the same from `manage.py create_project` / `configure_project`; each change audited."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from projects.models import AuditEvent, Membership, Project
from projects.settings_form import SETTINGS, form_data_from_values
from tests.factories import add_judgment, crowd_annotator, make_comparison

pytestmark = pytest.mark.django_db


def new_project_data(**overrides) -> dict:
    project = Project(name="Fresh", slug="fresh")
    data = form_data_from_values({}, project) | {"slug": "fresh", "name": "Fresh"}
    return data | overrides


def test_admin_creates_a_project_on_the_page(client, admin_user):
    client.force_login(admin_user)
    assert client.get(reverse("project_new")).status_code == 200
    resp = client.post(reverse("project_new"), new_project_data(overlap_k="2", guidelines="Be *kind*."))
    assert resp.status_code == 302
    project = Project.objects.get(slug="fresh")
    assert project.overlap_k == 2 and project.created_by == admin_user
    event = AuditEvent.objects.get(action="project.created", project=project)
    assert event.actor == admin_user and event.data["settings"]["overlap_k"] == 2


def test_researchers_create_projects_only_where_the_site_allows(client, researcher, annotator, settings):
    client.force_login(researcher)
    assert client.get(reverse("project_new")).status_code == 404
    assert "New project" not in client.get(reverse("home")).content.decode()
    settings.ARBITER_RESEARCHERS_CREATE_PROJECTS = True
    assert "New project" in client.get(reverse("home")).content.decode()
    assert client.post(reverse("project_new"), new_project_data()).status_code == 302
    project = Project.objects.get(slug="fresh")
    assert Membership.objects.get(project=project, user=researcher).role == "researcher"
    client.force_login(annotator)
    assert client.get(reverse("project_new")).status_code == 404


def test_settings_are_validated_field_by_field_and_nothing_changes(client, researcher, project):
    client.force_login(researcher)
    url = reverse("project_settings", args=[project.slug])
    data = form_data_from_values({"overlap_k": 0, "gold_share": 1.5, "harm_categories": "Bad Name"}, project)
    resp = client.post(url, data)
    assert resp.status_code == 200
    page = resp.content.decode()
    for field, message in (
        ("overlap_k", "0 is out of range: 1 to 50."),
        ("gold_share", "1.5 is out of range: 0 to 1."),
        ("harm_categories", "line 1: &#x27;Bad Name&#x27; is not a category name"),
    ):
        block = page[page.index(f'id="field-{field}"') :]
        assert message in block[: block.index('<div class="field')]
    project.refresh_from_db()
    assert project.overlap_k == 3 and project.gold_share == 0.0
    assert not AuditEvent.objects.filter(action="project.configured").exists()
    no_question = form_data_from_values(
        {"ask_overall": False, "ask_helpful_harmless": False, "ask_safety": False}, project
    )
    assert "Ask at least one question" in client.post(url, no_question).content.decode()


def test_every_setting_can_be_changed_on_the_page_and_is_audited(client, researcher, project):
    client.force_login(researcher)
    url = reverse("project_settings", args=[project.slug])
    values = {
        "name": "Renamed",
        "description": "About it",
        "task_kind": "ranking",
        "guidelines": "# Rules",
        "ask_overall": False,
        "ask_helpful_harmless": True,
        "ask_safety": True,
        "harm_categories": ["self_harm", "privacy_violation"],
        "justification": "required",
        "rubric_essential_blocks": False,
        "rubric_essential_cap": 0.25,
        "overlap_k": 5,
        "gold_share": 0.1,
        "queue_order": "uncertainty",
        "reservation_minutes": 10,
        "revision_window_hours": 2,
        "show_gold_feedback": True,
        "auto_pause_gold_threshold": 0.6,
        "auto_pause_min_gold": 4,
        "blur_content": True,
        "content_warning": "Violence",
        "researchers_can_export": True,
        "retrain_every": 100,
    }
    assert set(values) == set(SETTINGS)
    assert client.post(url, form_data_from_values(values, project)).status_code == 302
    project.refresh_from_db()
    for name, value in values.items():
        assert getattr(project, name) == value, name
    assert project.guidelines_updated_at is not None
    event = AuditEvent.objects.get(action="project.configured", project=project)
    assert event.actor == researcher
    assert set(event.data["changes"]) == set(SETTINGS) - {"ask_helpful_harmless", "ask_safety"}  # already on
    assert event.data["changes"]["overlap_k"] == [3, 5]


def test_preview_shows_the_questions_and_the_guidelines_without_saving(client, researcher, project):
    client.force_login(researcher)
    url = reverse("project_settings", args=[project.slug])
    data = form_data_from_values(
        {"guidelines": "Prefer **short** answers. <script>alert(1)</script>", "ask_helpful_harmless": False},
        project,
    )
    page = client.post(url, data | {"action": "preview"}).content.decode()
    preview = page[page.index('id="settings-preview"') :]
    assert "<strong>short</strong>" in preview and "<script>alert" not in preview
    assert "Overall, which response is better?" in preview and "More helpful" not in preview
    assert "Violence, aiding and abetting, incitement" in preview  # readable category labels
    project.refresh_from_db()
    assert project.guidelines == "" and project.ask_helpful_harmless


def test_annotators_and_outsiders_get_no_settings_page(client, annotator, outsider, project):
    for user in (annotator, outsider):
        client.force_login(user)
        assert client.get(reverse("project_settings", args=[project.slug])).status_code == 404


def test_create_and_configure_project_commands_print_json_and_are_audited(tmp_path):
    out = StringIO()
    call_command("create_project", "cli", "From the CLI", "--set", "overlap_k=2", "--json", stdout=out)
    created = json.loads(out.getvalue())
    assert created["slug"] == "cli" and created["overlap_k"] == 2
    settings_file = tmp_path / "settings.json"
    settings_file.write_text(json.dumps({"gold_share": 0.2, "harm_categories": ["self_harm"]}))
    out = StringIO()
    call_command(
        "configure_project",
        "cli",
        "--from",
        str(settings_file),
        "--set",
        "ask_overall=false",
        "--json",
        stdout=out,
    )
    configured = json.loads(out.getvalue())
    assert configured["gold_share"] == 0.2 and configured["ask_overall"] is False
    assert configured["changed"] == ["ask_overall", "gold_share", "harm_categories"]
    project = Project.objects.get(slug="cli")
    assert project.overlap_k == 2 and project.harm_categories == ["self_harm"]
    actions = list(
        AuditEvent.objects.filter(project=project).order_by("pk").values_list("action", "actor_name")
    )
    assert actions == [("project.created", "manage.py"), ("project.configured", "manage.py")]


def test_commands_refuse_bad_settings_naming_the_field_and_change_nothing():
    call_command("create_project", "cli", "From the CLI", stdout=StringIO())
    with pytest.raises(CommandError, match="overlap_k: 0 is out of range"):
        call_command("configure_project", "cli", "--set", "overlap_k=0", "--set", "gold_share=0.5")
    with pytest.raises(CommandError, match="unknown setting.*colour"):
        call_command("configure_project", "cli", "--set", "colour=blue")
    with pytest.raises(CommandError, match="queue_order: Select a valid choice. random"):
        call_command("configure_project", "cli", "--set", "queue_order=random")
    call_command("configure_project", "cli", "--set", "queue_order=disagreement", stdout=StringIO())
    assert Project.objects.get(slug="cli").queue_order == "disagreement"
    with pytest.raises(CommandError, match="exists already"):
        call_command("create_project", "cli", "Again")
    assert Project.objects.get(slug="cli").gold_share == 0.0
    assert AuditEvent.objects.filter(action="project.configured").count() == 1  # the queue order only


def test_the_task_is_set_on_create_and_fixed_once_the_project_has_judgments():
    out = StringIO()
    call_command("create_project", "ranks", "Rankings", "--set", "task_kind=ranking", "--json", stdout=out)
    assert json.loads(out.getvalue())["task_kind"] == "ranking"
    with pytest.raises(CommandError, match="task_kind: Select a valid choice. triples"):
        call_command("configure_project", "ranks", "--set", "task_kind=triples")
    call_command("configure_project", "ranks", "--set", "task_kind=pairs", stdout=StringIO())
    project = Project.objects.get(slug="ranks")
    assert project.task_kind == "pairs"
    add_judgment(make_comparison(project), crowd_annotator(project, "x"), preference=-1)
    with pytest.raises(CommandError, match="task_kind: The project has judgments already"):
        call_command("configure_project", "ranks", "--set", "task_kind=ranking")
    assert Project.objects.get(slug="ranks").task_kind == "pairs"
    assert Project.objects.create(name="Default", slug="default").task_kind == "pairs"
