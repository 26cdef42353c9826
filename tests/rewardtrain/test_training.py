from __future__ import annotations

import math

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from rewardtrain.trainer import checkpoints
from rewardtrain.trainer.training import (
    Cancelled,
    Pair,
    ResumeMismatch,
    TrainConfig,
    evaluate,
    load_scorer,
    render,
    train,
)
from tests.rewardtrain.rewardtrain_toys import polite_rude_pairs, toy_config


@pytest.mark.parametrize("objective", ["bt", "bt-margin", "cost"])
def test_loss_falls_and_accuracy_rises_on_learnable_toy_set(tiny_model, tmp_path, objective):
    pairs = polite_rude_pairs(200, cost=objective == "cost")
    progress = []
    result = train(
        pairs, toy_config(tiny_model, objective=objective), output_dir=tmp_path, on_progress=progress.append
    )

    losses = [p["loss"] for p in progress]
    assert losses[-1] < 0.3 * losses[0]
    assert result.metrics["eval_pairs"] >= 40
    assert result.metrics["eval_accuracy"] >= 0.95
    assert result.metrics["eval_mean_margin"] > 1.0
    assert result.metrics["steps"] == progress[-1]["step"] == progress[-1]["total_steps"]
    assert result.metrics["train_pairs_per_s"] > 0
    assert result.resumed_from_step is None
    assert set(progress[0]) >= {"step", "total_steps", "epoch", "loss", "pairs_per_s", "eta_s", "lr"}


def test_cost_sign_term_follows_safety_labels(tiny_model, tmp_path):
    pairs = polite_rude_pairs(200, seed=1, cost=True)
    result = train(pairs, toy_config(tiny_model, objective="cost"), output_dir=tmp_path)
    assert result.metrics["eval_safer_accuracy"] >= 0.95
    assert result.metrics["eval_sign_accuracy"] >= 0.9

    held_out = polite_rude_pairs(60, seed=2, cost=True)
    scores = evaluate(result.model_dir, held_out, objective="cost")
    safe_costs = [row["chosen"] for row in scores["per_pair"]]
    unsafe_costs = [row["rejected"] for row in scores["per_pair"]]
    assert sum(c < 0 for c in safe_costs) >= 0.9 * len(safe_costs)
    assert sum(c > 0 for c in unsafe_costs) >= 0.9 * len(unsafe_costs)
    # A cost model's margin is c(unsafer) − c(safer): positive when it ranks the pair right.
    assert scores["mean_margin"] > 0
    assert all(row["margin"] == pytest.approx(row["rejected"] - row["chosen"]) for row in scores["per_pair"])


def test_render_is_hh_turns_and_truncation_keeps_the_response(tiny_model, tmp_path):
    prompt = [
        {"role": "system", "content": "Be nice."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "Help?"},
    ]
    assert (
        render(prompt, "Sure.")
        == "System: Be nice.\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: Help?\n\nAssistant: Sure."
    )
    with pytest.raises(ValueError, match="unknown chat role"):
        render([{"role": "tool", "content": "x"}], "y")

    long_prompt = [{"role": "user", "content": " ".join(["padding"] * 300)}]
    scorer = load_scorer(tiny_model, max_length=32)
    ids = scorer.tokenizer(render(long_prompt, "the final answer"), truncation=True, max_length=32)[
        "input_ids"
    ]
    assert len(ids) == 32
    assert scorer.tokenizer.decode(ids, skip_special_tokens=True).endswith("the final answer")


def test_saved_model_scores_the_same_with_plain_transformers(tiny_model, tmp_path):
    pairs = polite_rude_pairs(80, seed=3)
    result = train(pairs, toy_config(tiny_model, epochs=1, max_length=48), output_dir=tmp_path)

    items = [(p.prompt, p.chosen) for p in pairs[:10]]
    items.append(
        ([{"role": "user", "content": " ".join(["long"] * 200)}], "the end")
    )  # truncated from the left
    ours = load_scorer(result.model_dir).score(items, batch_size=4)

    tokenizer = AutoTokenizer.from_pretrained(result.model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(result.model_dir).eval()
    plain = []
    with torch.no_grad():
        for prompt, response in items:
            encoded = tokenizer(render(prompt, response), truncation=True, max_length=48, return_tensors="pt")
            plain.append(model(**encoded).logits[0, 0].item())
    assert ours == pytest.approx(plain, abs=1e-5)


def _final_weights(model_dir: str) -> dict[str, torch.Tensor]:
    return AutoModelForSequenceClassification.from_pretrained(model_dir).state_dict()


def test_interrupted_run_resumes_from_its_checkpoint_and_matches_an_uninterrupted_one(tiny_model, tmp_path):
    pairs = polite_rude_pairs(120, seed=4)
    config = toy_config(tiny_model, epochs=2, checkpoint_every=3, grad_accum=2, batch_size=8)
    straight = train(pairs, config, output_dir=tmp_path / "straight")
    total = straight.metrics["steps"]
    assert total >= 10

    polls = []

    def stop_before_step_8() -> bool:
        polls.append(1)
        return len(polls) > 7

    with pytest.raises(Cancelled) as stopped:
        train(pairs, config, output_dir=tmp_path / "resumed", should_stop=stop_before_step_8)
    assert stopped.value.step == 7
    kept = checkpoints.list_complete(tmp_path / "resumed" / "checkpoints")
    assert [c.step for c in kept] == [3, 6]  # the newest two only

    resumed = train(pairs, config, output_dir=tmp_path / "resumed")
    assert resumed.resumed_from_step == 6
    assert resumed.metrics["steps"] == total
    assert resumed.metrics["steps_run"] == total - 6
    a, b = _final_weights(straight.model_dir), _final_weights(resumed.model_dir)
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=1e-6, msg=name)
    assert resumed.metrics["eval_accuracy"] == straight.metrics["eval_accuracy"]

    with pytest.raises(ResumeMismatch):
        train(
            pairs,
            toy_config(tiny_model, epochs=2, checkpoint_every=3, lr=1e-3),
            output_dir=tmp_path / "resumed",
        )


def test_incomplete_checkpoint_folders_are_ignored(tmp_path):
    root = tmp_path / "checkpoints"
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.AdamW(model.parameters())
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    checkpoints.save(
        root,
        5,
        model_state=model.state_dict(),
        optimizer_state=optimizer.state_dict(),
        scheduler=scheduler,
        state={},
        keep=2,
    )
    (root / "step-00000010").mkdir()  # no state.json: a folder left by something else, never trusted
    (root / ".tmp-step-00000015-999999").mkdir()  # an interrupted write
    latest = checkpoints.latest(root)
    assert latest is not None and latest.step == 5
    checkpoints.save(
        root,
        20,
        model_state=model.state_dict(),
        optimizer_state=optimizer.state_dict(),
        scheduler=scheduler,
        state={},
        keep=2,
    )
    assert not (root / ".tmp-step-00000015-999999").exists()
    assert [c.step for c in checkpoints.list_complete(root)] == [5, 20]


def test_explicit_eval_pairs_must_not_share_items(tiny_model, tmp_path):
    pairs = polite_rude_pairs(20)
    with pytest.raises(ValueError, match="both train and eval"):
        train(pairs, toy_config(tiny_model), output_dir=tmp_path, eval_pairs=pairs[:2])


def test_config_rejects_unknown_objective():
    with pytest.raises(ValueError, match="objective"):
        TrainConfig(base_model="x", objective="dpo").validate()
    with pytest.raises(ValueError, match="unknown TrainConfig fields"):
        TrainConfig.from_dict({"base_model": "x", "learning_rate": 1.0})


def test_bt_margin_loss_subtracts_the_scaled_human_margin():
    from rewardtrain.trainer.training import objective_loss

    scores = torch.tensor([2.0, 0.5, 1.0, 1.0])  # chosen 2.0, 0.5; rejected 1.0, 1.0
    margin = torch.tensor([0.5, 0.0])
    safe = torch.tensor([-1, -1, -1, -1])
    config = TrainConfig(base_model="x", objective="bt-margin", margin_scale=2.0)
    expected = (-math.log(1 / (1 + math.exp(-(1.0 - 1.0)))) - math.log(1 / (1 + math.exp(0.5)))) / 2
    assert objective_loss(scores, margin, safe, config).item() == pytest.approx(expected)


def test_cost_loss_is_safe_rlhf_pairwise_plus_sign_terms():
    from rewardtrain.trainer.training import objective_loss

    # one pair: safer (chosen) cost -1, unsafer (rejected) cost 2; labels safe / unsafe
    scores = torch.tensor([-1.0, 2.0])
    safe = torch.tensor([1, 0])
    config = TrainConfig(base_model="x", objective="cost")

    def nls(x: float) -> float:
        return math.log1p(math.exp(-x))

    expected = nls(2.0 - (-1.0)) + nls(-1 * -1.0) + nls(+1 * 2.0)
    assert objective_loss(scores, torch.zeros(1), safe, config).item() == pytest.approx(expected)
    unlabelled = torch.tensor([-1, -1])
    assert objective_loss(scores, torch.zeros(1), unlabelled, config).item() == pytest.approx(nls(3.0))


def test_pair_is_frozen():
    pair = Pair(item_key="a", prompt=[], chosen="x", rejected="y")
    with pytest.raises(AttributeError):
        pair.chosen = "z"  # type: ignore[misc]


def test_gradient_checkpointing_trains_the_same_weights(tiny_model, tmp_path):
    pairs = polite_rude_pairs(64, seed=6)
    plain = train(pairs, toy_config(tiny_model, epochs=1), output_dir=tmp_path / "plain")
    checkpointed = train(
        pairs, toy_config(tiny_model, epochs=1, gradient_checkpointing=True), output_dir=tmp_path / "gc"
    )
    a, b = _final_weights(plain.model_dir), _final_weights(checkpointed.model_dir)
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=1e-5, msg=name)
