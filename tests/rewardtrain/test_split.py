from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from rewardtrain.trainer.data import Pair, length_grouped_batches, split_by_item

keys = st.text(alphabet="abcdefgh", min_size=1, max_size=3)


def _pairs(item_keys: list[str]) -> list[Pair]:
    return [Pair(item_key=k, prompt=[], chosen=f"c{i}", rejected=f"r{i}") for i, k in enumerate(item_keys)]


@settings(max_examples=300, deadline=None)
@given(item_keys=st.lists(keys, max_size=60), fraction=st.floats(0.0, 0.95), seed=st.integers(0, 2**31))
def test_split_never_shares_an_item(item_keys, fraction, seed):
    pairs = _pairs(item_keys)
    train, held_out = split_by_item(pairs, fraction, seed)

    assert {p.item_key for p in train}.isdisjoint({p.item_key for p in held_out})
    assert sorted(train + held_out, key=pairs.index) == pairs
    distinct = len(set(item_keys))
    if fraction > 0 and distinct >= 2:
        assert train and held_out
    # Deterministic, and independent of the order the pairs come in.
    shuffled = pairs[:]
    random.Random(seed).shuffle(shuffled)
    again_train, again_held_out = split_by_item(shuffled, fraction, seed)
    assert {p.item_key for p in again_held_out} == {p.item_key for p in held_out}
    assert split_by_item(pairs, fraction, seed) == (train, held_out)


@settings(max_examples=200, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 300), max_size=200),
    batch_size=st.integers(1, 17),
    megabatch=st.integers(0, 10),
    seed=st.integers(0, 1000),
)
def test_length_grouped_batches_cover_every_pair_once(lengths, batch_size, megabatch, seed):
    batches = length_grouped_batches(lengths, batch_size, seed, epoch=0, megabatch=megabatch)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(lengths)))
    assert all(1 <= len(b) <= batch_size for b in batches)
    assert batches == length_grouped_batches(lengths, batch_size, seed, epoch=0, megabatch=megabatch)


def test_length_grouping_cuts_padding():
    rng = random.Random(0)
    lengths = [rng.randint(10, 256) for _ in range(1024)]

    def padded(batches):
        return sum(len(b) * max(lengths[i] for i in b) for b in batches)

    grouped = padded(length_grouped_batches(lengths, 16, 0, 0, megabatch=8))
    plain = padded(length_grouped_batches(lengths, 16, 0, 0, megabatch=0))
    assert grouped < 0.75 * plain


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(1, 200),
    batch_size=st.integers(1, 17),
    grad_accum=st.integers(1, 4),
    world_size=st.integers(1, 4),
    megabatch=st.integers(0, 10),
)
def test_plan_gives_every_rank_the_same_number_of_micro_batches(
    n, batch_size, grad_accum, world_size, megabatch
):
    from rewardtrain.trainer.training import _Plan

    plan = _Plan([5] * n, batch_size, grad_accum, world_size, seed=0, megabatch=megabatch)
    batches = plan.epoch_batches(0)
    assert len(batches) == plan.batches_per_epoch
    assert len(batches) % world_size == 0
    assert set().union(*map(set, batches)) == set(range(n))
    steps = [plan.step_batches(batches, s) for s in range(plan.steps_per_epoch)]
    assert all(step and len(step) % world_size == 0 for step in steps)
    assert sum(len(step) for step in steps) == len(batches)
