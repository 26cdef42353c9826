"""A rubric as JSON and YAML round-trips exactly; bad files say what and where and create nothing."""

from __future__ import annotations

import json

import pytest
import yaml
from django.core.management import CommandError, call_command

from rubrics import services
from rubrics.interchange import RubricFileError, dump_rubric, import_rubric, rubric_document
from rubrics.models import Rubric

from .conftest import build_rubric


@pytest.fixture
def edited_version(db):
    """Keys not in creation order, guidance, non-default weight and answer types: every field matters."""
    version = build_rubric(publish=False)
    services.criterion_update(
        criterion=version.criteria.get(key="c2"),
        guidance="A link or a named work.\nNot “trust me”.",
        weight=2.5,
    )
    services.criterion_move(criterion=version.criteria.get(key="c4"), offset=-2)
    return services.version_publish(version=version, user=None)


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_export_import_export_is_identical(edited_version, fmt):
    text = dump_rubric(edited_version, fmt)
    rubric = import_rubric(text, fmt)
    again = rubric.versions.get()
    assert dump_rubric(again, fmt) == text
    document = rubric_document(again)
    assert document == rubric_document(edited_version)
    assert [c["key"] for c in document["criteria"]] == ["c1", "c4", "c2", "c3"]
    assert document["criteria"][2]["guidance"] == "A link or a named work.\nNot “trust me”."
    assert document["criteria"][2]["weight"] == 2.5
    assert again.status == "draft"


def test_json_and_yaml_carry_the_same_document(edited_version):
    assert json.loads(dump_rubric(edited_version, "json")) == yaml.safe_load(
        dump_rubric(edited_version, "yaml")
    )


def test_import_with_default_weights_and_answer_type(db):
    text = json.dumps({"name": "Short", "criteria": [{"key": "k1", "text": "Short", "category": "pitfall"}]})
    version = import_rubric(text, "json").versions.get()
    criterion = version.criteria.get()
    assert (criterion.key, criterion.weight, criterion.answer_type) == ("k1", -2, "yes_no")


def test_bad_files_list_every_error_with_where_and_create_nothing(db):
    bad = {
        "name": "",
        "criteria": [
            {"key": "a", "text": "x", "category": "essential", "weight": -1},
            {"key": "a", "text": "y", "category": "kind"},
            {"key": "b", "text": "z", "category": "optional", "answer_type": "scale", "extra": 1},
        ],
    }
    with pytest.raises(RubricFileError) as info:
        import_rubric(json.dumps(bad), "json")
    assert info.value.errors == [
        "name: required, a non-empty string",
        "criteria[0].weight: Essential, important and optional criteria need a positive weight.",
        "criteria[1].key: 'a' appears twice",
        "criteria[1].category: 'kind' is not one of essential, important, optional, pitfall",
        "criteria[2]: unknown field(s) extra",
        "criteria[2].answer_type: 'scale' is not one of yes_no, yes_no_na",
    ]
    with pytest.raises(RubricFileError, match="line 2, column"):
        import_rubric('{"name": "x",\n "criteria": [,]}', "json")
    with pytest.raises(RubricFileError, match="line 2"):
        import_rubric("name: x\ncriteria: [a, : b", "yaml")
    assert not Rubric.objects.exists()


def test_management_commands_round_trip(edited_version, tmp_path, capsys):
    out = tmp_path / "rubric.yaml"
    call_command("rubric_export", str(edited_version.rubric_id), "--format", "yaml", "--out", str(out))
    call_command("rubric_import", str(out), "--publish")
    new_id = int(capsys.readouterr().out.strip())
    imported = Rubric.objects.get(pk=new_id).versions.get()
    assert imported.status == "published"
    call_command("rubric_export", str(new_id), "--number", "1")
    assert capsys.readouterr().out == dump_rubric(edited_version, "json")
    with pytest.raises(CommandError, match="No rubric"):
        call_command("rubric_export", "999999")
    broken = tmp_path / "broken.json"
    broken.write_text('{"name": "x", "criteria": []}')
    with pytest.raises(CommandError, match="broken.json: criteria: required"):
        call_command("rubric_import", str(broken))
