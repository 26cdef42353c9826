"""Rankings reach consensus and snapshots through the pair judgments they imply, with no change there."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from annotate.assignment import claim_next
from annotate.ranking_services import submit_ranking
from curation.snapshots import create_snapshot
from projects.models import Membership, Project
from tests.factories import make_ranking_item

pytestmark = pytest.mark.django_db


def test_three_rankings_of_four_responses_give_six_consensus_pairs():
    project = Project.objects.create(
        name="Ranks", slug="ranks", overlap_k=3, task_kind=Project.TaskKind.RANKING, ask_safety=False
    )
    item = make_ranking_item(project, 4, pairs=False)  # the ranking service creates the pairs
    a, b, c, d = item.responses.order_by("pk").values_list("pk", flat=True)
    orders = [[[a], [b], [c], [d]], [[a], [b, c], [d]], [[d], [c], [b], [a]]]
    for i, tiers in enumerate(orders):
        user = User.objects.create(username=f"r{i}")
        Membership.objects.create(user=user, project=project, role=Membership.Role.ANNOTATOR)
        assignment = claim_next(project=project, user=user)
        submit_ranking(assignment=assignment, user=user, answers={"tiers": tiers}, submission_id=f"s{i}")

    snapshot = create_snapshot(project=project)
    pairs = {
        (p.comparison.response_a_id, p.comparison.response_b_id): p
        for p in snapshot.pairs.select_related("comparison")
    }
    # b–c: one vote each way and one tie, so no strict majority of the non-tie votes: left out.
    assert set(pairs) == {(a, b), (a, c), (a, d), (b, d), (c, d)}
    assert {key: p.chosen for key, p in pairs.items()} == {
        (a, b): "a",
        (a, c): "a",
        (a, d): "a",
        (b, d): "a",
        (c, d): "a",
    }
    assert all(p.votes == 3 for p in pairs.values())
