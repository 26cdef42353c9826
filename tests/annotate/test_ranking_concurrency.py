"""Rankings under real concurrent transactions: claims keep k, submits never duplicate a ranking or a pair."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from annotate.assignment import annotator_for, claim_next
from annotate.models import Assignment, Comparison, Judgment, Ranking, RankingRevision
from annotate.ranking_services import submit_ranking
from annotate.services import SubmissionRefused
from projects.models import Membership, Project
from tests.annotate.test_assignment_concurrency import race
from tests.factories import make_ranking_item

pytestmark = pytest.mark.django_db(transaction=True)


def _project(k: int) -> Project:
    return Project.objects.create(
        name="Rank race", slug="rank-race", overlap_k=k, task_kind="ranking", ask_safety=False
    )


def _members(project: Project, n: int) -> list[User]:
    users = [User.objects.create(username=f"ranker{i}") for i in range(n)]
    Membership.objects.bulk_create(
        Membership(user=u, project=project, role=Membership.Role.ANNOTATOR) for u in users
    )
    for u in users:
        annotator_for(project=project, user=u)
    return users


def test_twenty_annotators_claiming_at_once_fill_exactly_k_per_item():
    project = _project(k=2)
    for i in range(5):
        make_ranking_item(project, 3, f"item {i}", pairs=False)
    users = _members(project, 20)
    results = race(20, lambda i: getattr(claim_next(project=project, user=users[i]), "pk", None))
    assert len([pk for pk in results if pk is not None]) == 10
    rows = list(Assignment.objects.filter(project=project).values_list("item_id", "annotator_id"))
    assert len(rows) == 10 and len({item for item, _ in rows}) == 5


def test_two_annotators_submitting_one_item_at_once_write_each_pair_once_each():
    project = _project(k=2)
    item = make_ranking_item(project, 4, pairs=False)  # both submits must create the missing pairs: once
    ids = list(item.responses.values_list("pk", flat=True))
    users = _members(project, 2)
    claims = [claim_next(project=project, user=u) for u in users]
    race(
        2,
        lambda i: (
            submit_ranking(
                assignment=claims[i], user=users[i], answers={"tiers": [ids]}, submission_id=f"s{i}"
            ).pk
        ),
    )
    assert Ranking.objects.count() == 2
    assert Comparison.objects.filter(item=item).count() == 6
    assert Judgment.objects.count() == 12
    assert set(Comparison.objects.filter(item=item).values_list("crowd_judgments", flat=True)) == {2}


def test_two_tabs_submitting_at_once_store_one_ranking():
    project = _project(k=1)
    item = make_ranking_item(project, 3)
    ids = list(item.responses.values_list("pk", flat=True))
    [user] = _members(project, 1)
    claim = claim_next(project=project, user=user)

    def submit(i: int):
        try:
            return submit_ranking(
                assignment=claim, user=user, answers={"tiers": [ids]}, submission_id=f"tab{i}"
            ).pk
        except SubmissionRefused:
            return "refused"

    results = race(2, submit)
    assert sorted(map(str, results)).count("refused") == 1
    assert (
        Ranking.objects.count() == 1
        and RankingRevision.objects.count() == 1
        and Judgment.objects.count() == 3
    )
