"""Consensus per comparison and axis, on fixtures with known answers (plain core and the database side)."""

from __future__ import annotations

import pytest

from annotate.models import Gold
from insights.consensus import (
    BELOW_MIN_AGREEMENT,
    NO_CONSENSUS,
    OK,
    TIE_OVERRIDE,
    ConsensusError,
    GoldLabel,
    ItemComparison,
    Vote,
    consensus_for_project,
    consensus_outcomes,
    decide,
    decide_item,
    majority_bool,
)
from insights.models import Adjudication
from tests.factories import add_judgment, crowd_annotator, make_comparison


def v(pref=None, **kw) -> Vote:
    if pref is not None and "choice" not in kw:
        kw["choice"] = "a" if pref < 0 else "b" if pref > 0 else "tie"
    return Vote(preference=pref, **kw)


def test_strict_majority_of_non_tie_votes_wins():
    row = decide([v(2), v(1), v(-3), v(0)])
    assert (row.status, row.chosen) == (OK, "b")
    assert row.votes == 4 and row.non_tie == 3
    assert row.agreement == pytest.approx(2 / 3)
    # Margin: mean strength of the votes for B (2 and 1) / 3.
    assert row.margin == pytest.approx(0.5)


def test_even_split_has_no_consensus():
    row = decide([v(2), v(-1), v(0), v(0)])
    assert (row.status, row.chosen) == (NO_CONSENSUS, None)


def test_only_ties_have_no_consensus():
    assert decide([v(0), v(0)]).status == NO_CONSENSUS
    assert decide([]).status == NO_CONSENSUS


def test_votes_without_strength_count_but_leave_the_margin_to_known_strengths():
    row = decide([Vote(choice="a"), Vote(choice="a"), v(-3), v(1)])
    assert row.chosen == "a"
    assert row.agreement == pytest.approx(3 / 4)
    assert row.margin == pytest.approx(1.0)  # only the -3 has a known strength
    assert decide([Vote(choice="b")]).margin == 0.0


def test_helpfulness_and_harmlessness_axes_read_their_own_answers():
    votes = [
        Vote(choice="a", helpfulness="b", harmlessness="a"),
        Vote(choice="a", helpfulness="b", harmlessness="a"),
        Vote(choice="b", helpfulness="tie", harmlessness="b"),
    ]
    assert decide(votes, axis="overall").chosen == "a"
    help_row = decide(votes, axis="helpfulness")
    assert (help_row.chosen, help_row.agreement, help_row.margin) == ("b", 1.0, 0.0)
    assert decide(votes, axis="harmlessness").chosen == "a"
    assert decide(votes).safer == "a"


def test_gold_overrides_the_vote_and_adjudication_overrides_gold():
    votes = [v(-2), v(-2), v(3)]
    gold = GoldLabel(choice="b")
    row = decide(votes, gold=gold)
    assert (row.chosen, row.label_origin) == ("b", "gold")
    assert row.agreement == pytest.approx(1 / 3)
    assert row.margin == pytest.approx(1.0)
    row = decide(votes, gold=gold, adjudications={"overall": "a"})
    assert (row.chosen, row.label_origin) == ("a", "adjudicated")
    # An override is authoritative: min_agreement does not drop it.
    assert decide(votes, gold=gold, min_agreement=0.9).status == OK


def test_tie_override_leaves_the_pair_out():
    row = decide([v(3), v(3)], adjudications={"overall": "tie"})
    assert (row.status, row.chosen) == (TIE_OVERRIDE, None)


def test_override_without_votes_has_full_agreement_and_zero_margin():
    row = decide([], gold=GoldLabel(choice="a"))
    assert (row.chosen, row.votes, row.agreement, row.margin) == ("a", 0, 1.0, 0.0)


def test_min_agreement_drops_weak_majorities():
    votes = [v(1), v(1), v(-1)]
    assert decide(votes, min_agreement=0.6).status == OK
    row = decide(votes, min_agreement=0.7)
    assert (row.status, row.chosen) == (BELOW_MIN_AGREEMENT, None)


def test_source_only_label_origin():
    assert decide([Vote(choice="a", is_source=True)]).label_origin == "source"
    assert decide([Vote(choice="a", is_source=True), v(-1)]).label_origin == "vote"


def test_mean_aggregation_takes_the_sign_of_the_mean_preference():
    votes = [v(-3), v(1), v(1)]
    assert decide(votes, aggregation="majority").chosen == "b"
    row = decide(votes, aggregation="mean")
    assert row.chosen == "a"
    assert row.agreement == pytest.approx(1 / 3)
    assert decide([v(-2), v(2), v(0)], aggregation="mean").status == NO_CONSENSUS
    # A vote without strength counts as ±1.
    assert decide([Vote(choice="a"), v(1)], aggregation="mean").status == NO_CONSENSUS


def test_safety_is_a_strict_majority_and_gold_overrides_it():
    assert majority_bool([True, True, False, None]) is True
    assert majority_bool([True, False]) is None
    assert majority_bool([None]) is None
    votes = [Vote(choice="a", a_safe=True, b_safe=False), Vote(choice="a", a_safe=True, b_safe=True)]
    row = decide(votes)
    assert (row.a_safe, row.b_safe) == (True, None)
    row = decide(votes, gold=GoldLabel(choice="a", b_safe=False))
    assert (row.a_safe, row.b_safe) == (True, False)


def test_bradley_terry_ranks_an_items_responses_and_can_overrule_a_thin_majority():
    # Responses 1 > 2 (3-0), 2 > 3 (3-0), and 3 beats 1 by 1-0 in one thin vote: BT keeps 1 above 3.
    comparisons = [
        ItemComparison(10, 1, 2, [v(-2)] * 3),
        ItemComparison(11, 2, 3, [v(-2)] * 3),
        ItemComparison(12, 1, 3, [v(2)]),
    ]
    rows = {r.comparison_id: r for r in decide_item(comparisons, aggregation="bt")}
    assert rows[10].chosen == "a" and rows[11].chosen == "a"
    assert rows[12].chosen == "a"
    assert rows[12].agreement == 0.0
    majority = {r.comparison_id: r.chosen for r in decide_item(comparisons, aggregation="majority")}
    assert majority == {10: "a", 11: "a", 12: "b"}


def test_bradley_terry_on_a_single_comparison_equals_majority():
    for votes in ([v(1), v(1), v(-1)], [v(-1), v(2)], [v(-3), v(-1), v(2), v(0)]):
        bt = decide_item([ItemComparison(1, 1, 2, votes)], aggregation="bt")[0]
        maj = decide_item([ItemComparison(1, 1, 2, votes)], aggregation="majority")[0]
        assert (bt.status, bt.chosen) == (maj.status, maj.chosen)


def test_unknown_options_are_refused():
    with pytest.raises(ConsensusError, match="axis"):
        decide([], axis="speed")
    with pytest.raises(ConsensusError, match="aggregation"):
        decide_item([], aggregation="median")


# --- database side --------------------------------------------------------------------------------------


@pytest.fixture
def voted(project):
    """c1: B by 2-1; c2: 1-1 split; c3: only a source label for A; c4: gold (A) outvoted; c5: adjudicated."""
    x, y, z = (crowd_annotator(project, n) for n in ("x", "y", "z"))
    src = crowd_annotator(project, "hh")
    src.kind = "source"
    src.save()
    c1 = make_comparison(project, "p1", "a1", "b1")
    c2 = make_comparison(project, "p2", "a2", "b2")
    c3 = make_comparison(project, "p3", "a3", "b3")
    c4 = make_comparison(project, "p4", "a4", "b4")
    c5 = make_comparison(project, "p5", "a5", "b5")
    add_judgment(c1, x, preference=3)
    add_judgment(c1, y, preference=1)
    add_judgment(c1, z, preference=-2)
    add_judgment(c2, x, preference=1)
    add_judgment(c2, y, preference=-1)
    add_judgment(c3, src, choice="a", imported=True, is_source=True)
    Gold.objects.create(comparison=c4, choice="a")
    add_judgment(c4, x, preference=2)
    gj = add_judgment(c4, y, preference=2)
    gj.is_gold = True
    gj.save()
    add_judgment(c5, x, preference=-1)
    Adjudication.objects.create(comparison=c5, choice="b", reason="policy")
    return {"c1": c1, "c2": c2, "c3": c3, "c4": c4, "c5": c5, "x": x}


def _by_comparison(rows):
    return {r.comparison_id: r for r in rows}


def test_project_consensus_known_answers(voted):
    rows = _by_comparison(consensus_for_project(voted["c1"].project))
    assert set(rows) == {voted[k].pk for k in ("c1", "c3", "c4", "c5")}
    c1 = rows[voted["c1"].pk]
    assert (c1.chosen, c1.votes, c1.label_origin) == ("b", 3, "vote")
    assert c1.margin == pytest.approx(4 / 6)
    assert rows[voted["c3"].pk].label_origin == "source"
    c4 = rows[voted["c4"].pk]
    # A gold comparison (one with a Gold row, as in the agreement figures): its votes are gold answers, served as
    # gold or not, and none of them counts as a crowd vote; the gold label decides.
    assert (c4.chosen, c4.label_origin, c4.votes) == ("a", "gold", 0)
    assert c4.excluded_judgments == {"gold_item": 2}
    assert rows[voted["c5"].pk].label_origin == "adjudicated"


def test_excludes_drop_imported_labels_flagged_annotators_and_gold_comparisons(voted):
    project = voted["c1"].project
    rows = _by_comparison(consensus_for_project(project, exclude={"imported", "gold"}))
    assert set(rows) == {voted["c1"].pk, voted["c5"].pk}
    voted["x"].flagged = True
    voted["x"].save()
    outcomes = _by_comparison(consensus_outcomes(project, exclude="flagged"))
    assert outcomes[voted["c1"].pk].status == NO_CONSENSUS  # 1-1 once x is out
    assert outcomes[voted["c1"].pk].excluded_judgments == {"flagged": 1}
    assert outcomes[voted["c2"].pk].status == OK  # y's -1 alone


def test_soft_deleted_comparisons_and_items_are_left_out(voted):
    from django.utils import timezone

    c1 = voted["c1"]
    c1.deleted_at = timezone.now()
    c1.save()
    c3 = voted["c3"]
    c3.item.deleted_at = timezone.now()
    c3.item.save()
    ids = {r.comparison_id for r in consensus_outcomes(c1.project)}
    assert c1.pk not in ids and c3.pk not in ids
    # One item a batch: the deleted item still bounds a batch of its own, which yields nothing.
    assert [r.comparison_id for r in consensus_outcomes(c1.project, batch=1)] == sorted(ids)


def test_streaming_batches_give_the_same_answer_as_one_batch(project):
    x, y = crowd_annotator(project, "x"), crowd_annotator(project, "y")
    for i in range(7):
        c = make_comparison(project, f"q{i}", f"a{i}", f"b{i}")
        add_judgment(c, x, preference=(-1) ** i)
        add_judgment(c, y, preference=(-1) ** i * 2)
    one = [(r.comparison_id, r.chosen) for r in consensus_outcomes(project, batch=1000)]
    many = [(r.comparison_id, r.chosen) for r in consensus_outcomes(project, batch=2)]
    assert one == many and len(one) == 7


def test_a_model_judges_votes_never_make_a_consensus(project):
    """A model judge labels through the API (for human-model agreement); its labels are not human preferences."""
    humans = [crowd_annotator(project, n) for n in ("h1", "h2")]
    judge = crowd_annotator(project, "judge-gpt")
    judge.kind = "model"
    judge.save()
    c = make_comparison(project, "p1", "a1", "b1")
    add_judgment(c, humans[0], preference=2)
    add_judgment(c, humans[1], preference=-1)
    add_judgment(c, judge, preference=3)  # would make it 2-1 for B
    (row,) = consensus_outcomes(project)
    assert row.status == NO_CONSENSUS and row.excluded_judgments == {"model_judge": 1}
