"""Grouped batches (`TrainConfig.group_pairs`): every pair of a ranking in one micro-batch, each of its K
responses scored once, so a ranking costs K forward sequences, not K(K−1); the loss is the per-pair one."""

from __future__ import annotations

import itertools
import random
import shutil

import pytest
import torch

from rewardtrain.trainer import checkpoints
from rewardtrain.trainer.data import (
    Pair,
    collate,
    collate_grouped,
    collate_packed,
    encode_pairs,
    item_groups,
    write_pairs_jsonl,
)
from rewardtrain.trainer.training import TrainConfig, _Plan, load_model, load_tokenizer, objective_loss, train
from rewardtrain.trainer.wrapping import RewardModel
from tests.rewardtrain.rewardtrain_toys import FILLER, toy_config
from tests.rewardtrain.test_trainer_modes import LOSS_TOLERANCE, assert_same_weights, torchrun, weights

GRADES = [
    "thank you kindly, happy to help",
    "sure, here it is",
    "fine, whatever you say",
    "go away, stupid question",
]  # best first


def ranking_pairs(n_items: int, seed: int = 0, k: int = 4) -> list[Pair]:
    """Each item a ranking of k responses (politer is better): its k(k−1)/2 implied pairs, all with the item's key."""
    rng = random.Random(seed)
    pairs = []
    for item in range(n_items):
        topic = " ".join(rng.choice(FILLER) for _ in range(3))
        prompt = [{"role": "user", "content": f"Tell me about {topic}."}]
        responses = [
            f"{' '.join(rng.choice(FILLER) for _ in range(rng.randint(1, 5)))} {g}" for g in GRADES[:k]
        ]
        for better, worse in itertools.combinations(range(k), 2):
            pairs.append(
                Pair(
                    item_key=f"ranking-{item}",
                    prompt=prompt,
                    chosen=responses[better],
                    rejected=responses[worse],
                    margin=(worse - better) / (k - 1),
                    chosen_safe=True,
                    rejected_safe=worse < k - 1,
                )
            )
    rng.shuffle(pairs)  # the trainer, not the input order, must keep a ranking together
    return pairs


def test_each_micro_batch_holds_whole_rankings():
    pairs = ranking_pairs(30)
    groups = item_groups(pairs)
    assert len(groups) == 30 and all(len(g) == 6 for g in groups)
    plan = _Plan(lengths=[1] * len(groups), batch_size=4, grad_accum=1, world_size=1, seed=0, megabatch=8,
                 groups=groups)  # fmt: skip
    batches = plan.epoch_batches(0)
    assert sorted(i for b in batches for i in b) == list(range(len(pairs)))
    for batch in batches:
        keys = {pairs[i].item_key for i in batch}
        assert len(batch) == 6 * len(keys) <= 24  # every pair of each ranking, batch_size rankings at most


def _forward_rows(model) -> list[int]:
    """Rows each forward pass of the transformers model receives (its batch dimension)."""
    rows: list[int] = []
    model.register_forward_hook(lambda module, args, kwargs, out: rows.append(kwargs["input_ids"].shape[0]),
                                with_kwargs=True)  # fmt: skip
    return rows


@pytest.mark.parametrize("objective", ["bt", "bt-margin", "cost"])
@pytest.mark.parametrize("pack", [False, True])
def test_k_sequences_per_ranking_and_the_per_pair_loss(tiny_llama, objective, pack):
    tokenizer = load_tokenizer(tiny_llama)
    config = TrainConfig(base_model=tiny_llama, objective=objective, margin_scale=0.5)
    pairs = ranking_pairs(3)
    data = encode_pairs(tokenizer, pairs, 64)
    indices = [i for group in item_groups(pairs) for i in group]  # 3 rankings of 4: 18 pairs
    torch.manual_seed(0)
    model = RewardModel(load_model(tiny_llama, tokenizer)).eval()
    rows = _forward_rows(model.model)
    pad_id = tokenizer.pad_token_id

    grouped = collate_grouped(data, indices, pad_id, pack=pack)
    scores = model(**{k: v for k, v in grouped.items() if k in ("input_ids", "attention_mask", "position_ids",
                                                               "chosen_at", "rejected_at")})  # fmt: skip
    sequences = len(scores)
    scores = scores[torch.cat([grouped["chosen_index"], grouped["rejected_index"]])]
    grouped_loss = objective_loss(scores, grouped["margin"], grouped["safe"], config)

    plain = (
        collate_packed(data, indices, pad_id, pack=True, share_prompt=False)
        if pack
        else collate(data, indices, pad_id)
    )
    plain_scores = model(**{k: v for k, v in plain.items() if k not in ("margin", "safe")})
    plain_loss = objective_loss(plain_scores, plain["margin"], plain["safe"], config)

    assert sequences == 3 * 4  # K per ranking, not K(K−1) = 36
    assert len(plain_scores) == 2 * 18
    if not pack:
        assert rows == [12, 36]  # the hook saw the rows of each forward pass
    assert torch.allclose(scores, plain_scores, atol=1e-5)
    assert grouped_loss.item() == pytest.approx(plain_loss.item(), abs=1e-6)
    accuracy = (
        ((scores[:18] > scores[18:]) if objective != "cost" else (scores[18:] > scores[:18])).float().mean()
    )
    plain_accuracy = (
        (
            (plain_scores[:18] > plain_scores[18:])
            if objective != "cost"
            else (plain_scores[18:] > plain_scores[:18])
        )
        .float()
        .mean()
    )
    assert accuracy == plain_accuracy


def test_grouped_training_learns_with_k_forward_sequences_per_ranking(tiny_model, tmp_path):
    pairs = ranking_pairs(48)
    config = toy_config(tiny_model, group_pairs=True, batch_size=4, epochs=6, eval_fraction=0.25)
    rows: list[int] = []

    def count(module, args, kwargs, out):
        if module.training and type(module).__name__.endswith("ForSequenceClassification"):
            rows.append(kwargs["input_ids"].shape[0])

    handle = torch.nn.modules.module.register_module_forward_hook(count, with_kwargs=True)
    try:
        result = train(pairs, config, output_dir=tmp_path)
    finally:
        handle.remove()
    m = result.metrics
    train_rankings = m["train_pairs"] // 6
    assert m["train_pairs"] == 36 * 6 and m["eval_pairs"] == 12 * 6  # split by ranking
    assert sum(rows) == m["train_sequences"] == 4 * train_rankings * config.epochs
    assert m["train_losses"][-1] < m["train_losses"][0]
    assert m["eval_accuracy"] > 0.9


def test_grouped_batches_refuse_prompt_sharing(tiny_llama, tmp_path):
    with pytest.raises(ValueError, match="group_pairs and share_prompt"):
        train(
            ranking_pairs(4), toy_config(tiny_llama, group_pairs=True, share_prompt=True), output_dir=tmp_path
        )


def test_grouped_packed_lora_training_runs_and_learns(tiny_llama, tmp_path):
    pairs = ranking_pairs(32)
    config = toy_config(tiny_llama, group_pairs=True, packing=True, mode="lora-merged", lora_r=4, lr=1e-2,
                        batch_size=4, epochs=4)  # fmt: skip
    m = train(pairs, config, output_dir=tmp_path).metrics
    assert m["train_sequences"] == 4 * (m["train_pairs"] // 6) * config.epochs
    assert m["train_losses"][-1] < m["train_losses"][0]


def test_a_grouped_run_resumes_to_the_same_weights(tiny_model, tmp_path):
    pairs = ranking_pairs(24)
    cfg = toy_config(
        tiny_model, group_pairs=True, batch_size=3, epochs=2, checkpoint_every=2, keep_checkpoints=10
    )
    whole = train(pairs, cfg, output_dir=tmp_path / "whole")
    kept = checkpoints.list_complete(tmp_path / "whole" / "checkpoints")
    shutil.copytree(kept[0].path, tmp_path / "again" / "checkpoints" / kept[0].path.name)
    again = train(pairs, cfg, output_dir=tmp_path / "again")
    assert again.resumed_from_step == kept[0].step
    assert again.metrics["train_losses"] == pytest.approx(
        whole.metrics["train_losses"][kept[0].step :], abs=1e-6
    )
    assert_same_weights(weights(again.model_dir), weights(whole.model_dir), atol=1e-6)


@pytest.mark.slow
def test_grouped_fsdp_on_two_processes_matches_one_process(tiny_llama, tmp_path):
    pairs = ranking_pairs(32, seed=2)
    write_pairs_jsonl(pairs, tmp_path / "pairs.jsonl")
    values = dict(base_model=tiny_llama, lr=3e-3, epochs=2, batch_size=2, max_length=64, eval_fraction=0.25,
                  progress_every=1, num_threads=1, group_pairs=True, checkpoint_every=0)  # fmt: skip
    sharded = torchrun({"config": {**values, "mode": "fsdp"}, "pairs_path": str(tmp_path / "pairs.jsonl"),
                        "output_dir": str(tmp_path / "fsdp")}, tmp_path / "fsdp")  # fmt: skip
    # One process with two micro-batches per step sees what the two ranks see together.
    alone = train(pairs, TrainConfig(**values, grad_accum=2), output_dir=tmp_path / "one")
    m = sharded["metrics"]
    assert m["world_size"] == 2 and m["train_sequences"] == alone.metrics["train_sequences"]
    assert m["train_sequences"] == 4 * (m["train_pairs"] // 6) * 2
    assert m["train_losses"] == pytest.approx(alone.metrics["train_losses"], abs=LOSS_TOLERANCE)
    assert_same_weights(weights(sharded["model_dir"]), weights(alone.model_dir), atol=1e-5)
