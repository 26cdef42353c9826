"""A ranking project's training run batches each ranking's implied pairs together: the snapshot's pairs carry
their item as `item_key` (the group), and the run's config turns `group_pairs` on unless told otherwise."""

from __future__ import annotations

from collections import Counter

import pytest

from curation import importers
from projects.models import Project
from rewardtrain import runner, services
from rewardtrain.trainer.data import Pair, item_groups
from tests.curation.test_ranking_import_export import ranking_rows, write

pytestmark = pytest.mark.django_db


@pytest.fixture
def ranked(project, tmp_path):
    project.task_kind = Project.TaskKind.RANKING
    project.harm_categories = ["violence"]
    project.save()
    importers.import_file(write(tmp_path / "r.jsonl", ranking_rows(8)), project=project, fmt="raw")
    return project


def test_a_ranking_projects_run_groups_each_items_pairs(ranked):
    run = services.start_run(project=ranked, objective="bt", base_model="x", config={}, enqueue=False)
    assert run.config["group_pairs"] is True
    rows = runner.pair_rows(run)
    pairs = [Pair(**row) for row in rows]
    groups = item_groups(pairs)
    # one group per item, holding its consensus pairs: at most K(K-1)/2 of its K responses
    assert len(groups) == len({row["item_key"] for row in rows}) == 8
    per_item = Counter(row["item_key"] for row in rows)
    assert all(1 <= n <= 10 for n in per_item.values())
    for group in groups:
        assert len({pairs[i].item_key for i in group}) == 1
        assert len({str(pairs[i].prompt) for i in group}) == 1


def test_group_pairs_follows_what_the_run_asks(ranked, project):
    off = services.start_run(project=ranked, objective="bt", base_model="x", config={"group_pairs": False},
                             enqueue=False)  # fmt: skip
    assert off.config["group_pairs"] is False
    shared = services.start_run(project=ranked, objective="bt", base_model="x", config={"share_prompt": True},
                                enqueue=False)  # fmt: skip
    assert shared.config["group_pairs"] is False
    with pytest.raises(services.RunError, match="group_pairs and share_prompt"):
        services.start_run(project=ranked, objective="bt", base_model="x",
                           config={"share_prompt": True, "group_pairs": True}, enqueue=False)  # fmt: skip
