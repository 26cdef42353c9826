"""The workbench hook: the checklist for a comparison, answer validation, saving answers with their version."""

from __future__ import annotations

import re

import pytest
from django.http import QueryDict
from django.template.loader import render_to_string

from annotate.models import Assignment
from rubrics import services
from rubrics.models import CriterionAnswer
from tests.factories import add_judgment, crowd_annotator, make_comparison

from .conftest import build_rubric

ITEM_CRITERIA = [
    {"id": "mentions-paris", "text": "Mentions Paris", "category": "essential"},
    {
        "id": "no-dates",
        "text": "Invents a date",
        "category": "pitfall",
        "weight": -3,
        "answer_type": "yes_no_na",
    },
]


@pytest.fixture
def setup(project, annotator):
    version = build_rubric()
    services.project_pin_version(project=project, version=version, user=None)
    comparison = make_comparison(project, "Capital of France?", "Paris.", "Lyon, since 1802.")
    comparison.item.criteria = ITEM_CRITERIA
    comparison.item.save()
    who = crowd_annotator(project, "ann", annotator)
    assignment = Assignment.objects.create(project=project, comparison=comparison, annotator=who)
    return version, comparison, assignment, who


def full(side_overrides=None):
    answers = {
        "c1": "yes",
        "c2": "na",
        "c3": "no",
        "c4": "no",
        "item:mentions-paris": "yes",
        "item:no-dates": "no",
    }
    return answers | (side_overrides or {})


def test_checklist_is_the_rubric_then_the_item_criteria(setup):
    _version, comparison, _assignment, _who = setup
    checklist = services.checklist_for(comparison)
    assert [c.key for c in checklist] == ["c1", "c2", "c3", "c4", "item:mentions-paris", "item:no-dates"]
    assert [c.source for c in checklist] == ["rubric"] * 4 + ["item"] * 2
    assert checklist[4].weight == 5 and checklist[5].weight == -3
    assert checklist[1].choices == ("yes", "no", "na") and checklist[0].choices == ("yes", "no")


def test_no_rubric_and_no_item_criteria_gives_an_empty_checklist(other_project):
    assert services.checklist_for(make_comparison(other_project)) == []


def test_complete_answers_validate(setup):
    _v, _c, assignment, _w = setup
    assert services.validate_rubric_answers(assignment, {"rubric": {"a": full(), "b": full()}}) == {}


def test_unanswered_essential_blocks_when_the_project_says_so(setup):
    _v, _c, assignment, _w = setup
    b = full()
    del b["c1"], b["item:mentions-paris"]
    errors = services.validate_rubric_answers(assignment, {"rubric": {"a": full(), "b": b}})
    assert set(errors) == {"rubric-b-c1", "rubric-b-item:mentions-paris"}
    assert "essential criterion needs an answer" in errors["rubric-b-c1"]
    assert set(services.validate_rubric_answers(assignment, {})) == {
        f"rubric-{s}-{k}" for s in "ab" for k in ("c1", "item:mentions-paris")
    }
    assignment.project.rubric_essential_blocks = False
    assignment.project.save()
    assert services.validate_rubric_answers(assignment, {"rubric": {"a": full(), "b": b}}) == {}


def test_wrong_values_and_unknown_keys_are_errors(setup):
    _v, _c, assignment, _w = setup
    a = full({"c1": "na", "nope": "yes"})
    errors = services.validate_rubric_answers(assignment, {"rubric": {"a": a, "b": full()}})
    assert set(errors) == {"rubric-a-c1", "rubric-a-nope"}
    assert "yes, no" in errors["rubric-a-c1"]
    assert services.validate_rubric_answers(assignment, {"rubric": "yes"}) == {
        "rubric": "Rubric answers must be an object with sides 'a' and 'b'."
    }


def test_saved_answers_record_the_version_they_were_given_under(setup, project):
    version, comparison, _assignment, who = setup
    judgment = add_judgment(comparison, who, preference=-2)
    revision = judgment.revisions.get()
    services.save_rubric_answers(revision, {"rubric": {"a": full(), "b": full({"c1": "no"})}})
    rows = CriterionAnswer.objects.filter(revision=revision)
    assert rows.count() == 12
    assert {r.version_id for r in rows if not r.criterion_key.startswith("item:")} == {version.pk}
    assert {r.version_id for r in rows if r.criterion_key.startswith("item:")} == {None}
    assert rows.get(side="b", criterion_key="c1").answer == "no"
    assert rows.get(side="a", criterion_key="c1").criterion.version == version

    # A later version pinned on the project leaves the old answers on the old version.
    draft = services.draft_from(version=version)
    services.criterion_add(version=draft, text="Polite")
    v2 = services.version_publish(version=draft, user=None)
    services.project_pin_version(project=project, version=v2, user=None)
    assert set(rows.filter(criterion__isnull=False).values_list("version_id", flat=True)) == {version.pk}
    assert services.rubric_answers_for_raw(revision)["version"] == "Helpfulness v1"


def test_raw_rubric_answers_round_trip(setup):
    version, comparison, _assignment, who = setup
    first = add_judgment(comparison, who, preference=1)
    services.save_rubric_answers(first.revisions.get(), {"rubric": {"a": full(), "b": full({"c4": "yes"})}})
    raw = services.rubric_answers_for_raw(first.revisions.get())
    assert raw == {"version": "Helpfulness v1", "a": full(), "b": full({"c4": "yes"})}

    other = add_judgment(comparison, crowd_annotator(comparison.project, "imported-7"), preference=1)
    assert services.store_raw_rubric_answers(other.revisions.get(), raw, comparison.project) == []
    assert services.rubric_answers_for_raw(other.revisions.get()) == raw
    assert (
        services.rubric_answers_for_raw(
            add_judgment(make_comparison(comparison.project, "x"), who).revisions.get()
        )
        is None
    )


def test_bad_raw_rubric_answers_store_nothing_and_say_where(setup):
    _version, comparison, _assignment, who = setup
    revision = add_judgment(comparison, who, preference=1).revisions.get()
    bad = {"version": "Helpfulness v1", "a": {"c1": "maybe", "zz": "yes"}, "b": {"c1": "yes"}}
    errors = services.store_raw_rubric_answers(revision, bad, comparison.project)
    assert errors == ["rubric.a.c1: 'maybe' is not one of yes, no", "rubric.a.zz: no such criterion"]
    assert not CriterionAnswer.objects.filter(revision=revision).exists()
    errors = services.store_raw_rubric_answers(
        revision, {"version": "v9", "a": {"c1": "yes"}}, comparison.project
    )
    assert errors == ["rubric.version: 'v9' is not a published version of rubric 'Helpfulness'"]


def test_item_criteria_shape_is_validated_with_where():
    value, errors = services.validate_item_criteria(ITEM_CRITERIA)
    assert (value, errors) == (ITEM_CRITERIA, [])
    _, errors = services.validate_item_criteria(
        [
            {"id": "x y", "text": "", "category": "vital", "weight": "5"},
            {"id": "ok", "text": "Fine", "category": "pitfall", "weight": 2, "colour": "red"},
            {"id": "ok", "text": "Again", "category": "optional", "answer_type": "scale"},
        ],
        where="line 3: rubric",
    )
    assert errors == [
        "line 3: rubric[0].id: 'x y' is not a valid id (1–56 letters, digits, '_', '.' or '-'.)",
        "line 3: rubric[0].text: required, a non-empty string",
        "line 3: rubric[0].category: 'vital' is not one of essential, important, optional, pitfall",
        "line 3: rubric[0].weight: must be a number",
        "line 3: rubric[1]: unknown field(s) colour",
        "line 3: rubric[1].weight: A pitfall's weight must be negative (it is subtracted when the pitfall is present).",
        "line 3: rubric[2].id: 'ok' appears twice",
        "line 3: rubric[2].answer_type: 'scale' is not one of yes_no, yes_no_na",
    ]
    assert services.validate_item_criteria({"id": "x"})[1] == ["rubric: must be a list of criteria, not dict"]


def test_checklist_template_renders_keyboard_operable_radio_groups(setup):
    _version, comparison, _assignment, _who = setup
    html = render_to_string(
        "rubrics/checklist.html",
        {
            "criteria": services.checklist_for(comparison),
            "side": "b",
            "answers": {"c1": "yes"},
            "errors": {"rubric-b-c3": "Needs an answer"},
        },
    )
    assert html.count('tabindex="0"') == 6
    checked = re.findall(r'<input type="radio" name="([^"]+)" value="(\w+)"[^>]*checked', html)
    assert checked == [("rubric-b-c1", "yes")]
    assert 'name="rubric-b-c2" value="na"' in html and 'name="rubric-b-c1" value="na"' not in html
    assert 'name="rubric-b-item:no-dates"' in html
    assert "Needs an answer" in html and "<kbd>y</kbd>" in html
    assert "rubrics-checklist.js" in html


def test_answers_parse_from_the_checklist_fields():
    data = QueryDict("rubric-a-c1=yes&rubric-b-item:x=na&rubric-a-c2=&other=1")
    assert services.rubric_answers_from_post(data) == {"a": {"c1": "yes"}, "b": {"item:x": "na"}}


def test_rubric_functions_are_registered_with_the_workbench():
    from annotate import services as workbench
    from rubrics import hooks

    assert workbench.answer_validators.count(hooks.validate) == 1
    assert workbench.answer_savers.count(hooks.save) == 1
    assert workbench.checklist_providers.count(services.checklist_for) == 1
    assert workbench.answer_loaders.count(hooks.load) == 1


def test_workbench_form_fields_reach_the_rubric_services_in_canonical_shape():
    from rubrics import hooks

    assert hooks.with_rubric({"rubric-a-c1": "yes", "rubric-b-c1": "no", "preference": "1"})["rubric"] == {
        "a": {"c1": "yes"},
        "b": {"c1": "no"},
    }
    given = {"rubric": {"a": {"c1": "na"}, "b": {}}}
    assert hooks.with_rubric(given) is given


def test_a_revision_starts_from_the_saved_checklist_answers(setup, project, annotator, client):
    """Revising must not silently drop the checklist: the form shows the latest revision's answers."""
    from django.urls import reverse

    from annotate.services import submit_judgment
    from rubrics import hooks
    from tests.annotate.workbench_support import answers

    _v, _c, assignment, _w = setup
    given_a, given_b = full(), full({"c1": "no", "item:no-dates": "yes"})
    fields = {f"rubric-a-{k}": v for k, v in given_a.items()} | {
        f"rubric-b-{k}": v for k, v in given_b.items()
    }
    judgment = submit_judgment(
        assignment=assignment, user=annotator, answers=answers() | fields, submission_id="s1"
    )
    assert hooks.load(judgment) == fields

    client.force_login(annotator)
    page = client.get(reverse("workbench_revise", args=[project.slug, judgment.pk])).content.decode()
    checked = set(re.findall(r'name="(rubric-[ab]-[^"]+)" value="([^"]+)"[^>]*\n?\s*checked', page))
    assert checked == set(fields.items())
