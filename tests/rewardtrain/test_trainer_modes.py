"""Training modes (LoRA merged / adapters, FSDP under torchrun), padding-free packing and prompt sharing,
throughput figures, and agreement between the training process and the saved model. Tiny models, CPU."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from rewardtrain.trainer import checkpoints
from rewardtrain.trainer.data import (
    collate,
    collate_packed,
    encode_pairs,
    prepare_tokenizer,
    write_pairs_jsonl,
)
from rewardtrain.trainer.training import (
    Cancelled,
    TrainConfig,
    evaluate,
    load_model,
    load_scorer,
    render,
    train,
)
from rewardtrain.trainer.wrapping import RewardModel
from tests.rewardtrain.rewardtrain_toys import polite_rude_pairs, save_tiny_llama, toy_config

ROOT = Path(__file__).resolve().parents[2]
# fp32 on CPU: a packed or sharded run does the same arithmetic in another order.
LOSS_TOLERANCE = 1e-5
SCORE_TOLERANCE = 1e-4  # training process vs the saved model loaded in fp32 (CPU)


def config(base_model: str, **overrides) -> TrainConfig:
    return toy_config(base_model, **{"epochs": 2, "batch_size": 8, "progress_every": 1, **overrides})


def weights(model_dir: str) -> dict[str, torch.Tensor]:
    return AutoModelForSequenceClassification.from_pretrained(model_dir).state_dict()


def assert_same_weights(a: dict, b: dict, atol: float) -> None:
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=atol, msg=name)


def plain_scores(model, tokenizer, items) -> list[float]:
    """Scores as plain transformers code gets them: one sequence at a time, no Arbiter code."""
    with torch.no_grad():
        return [
            model(**tokenizer(render(prompt, text), truncation=True, max_length=64, return_tensors="pt"))
            .logits[0, 0]
            .item()
            for prompt, text in items
        ]


# --- packing and prompt sharing ---------------------------------------------------------------------------


def test_packed_rows_score_each_sequence_as_its_own_padded_row(tiny_llama):
    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(tiny_llama))
    model = RewardModel(load_model(tiny_llama, tokenizer)).eval()
    pairs = polite_rude_pairs(6, seed=9)
    data = encode_pairs(tokenizer, pairs, 64)
    indices = list(range(len(pairs)))
    with torch.no_grad():
        padded = collate(data, indices, tokenizer.pad_token_id)
        reference = model(input_ids=padded["input_ids"], attention_mask=padded["attention_mask"])
        for pack, share in [(True, False), (False, True), (True, True)]:
            batch = collate_packed(
                data, indices, tokenizer.pad_token_id, pack=pack, share_prompt=share, pack_length=10_000
            )
            keys = ("input_ids", "attention_mask", "position_ids", "chosen_at", "rejected_at")
            scores = model(**{k: batch[k] for k in keys})
            torch.testing.assert_close(scores, reference, rtol=0, atol=1e-5, msg=f"pack={pack} share={share}")
            if pack:
                assert batch["input_ids"].shape[0] == 1  # one row, no pad token in it
                assert batch["input_ids"].numel() == sum(
                    len(data.chosen[i]) + len(data.rejected[i]) for i in indices
                ) - (sum(_shared(data, i) for i in indices) if share else 0)


def _shared(data, i) -> int:
    from rewardtrain.trainer.data import shared_prefix

    return shared_prefix(data.chosen[i], data.rejected[i])


def test_packing_and_prompt_sharing_train_with_the_padded_loss_on_fewer_tokens(tiny_llama, tmp_path):
    pairs = polite_rude_pairs(64, seed=1)
    runs = {}
    for name, options in {
        "padded": {},
        "packed": {"packing": True, "pack_length": 10_000},  # one row per micro-batch: not one pad token
        "shared": {"share_prompt": True},
        "packed+shared": {"packing": True, "share_prompt": True},
    }.items():
        runs[name] = train(pairs, config(tiny_llama, **options), output_dir=tmp_path / name).metrics
    base = runs["padded"]
    for name, metrics in runs.items():
        assert metrics["train_losses"] == pytest.approx(base["train_losses"], abs=LOSS_TOLERANCE), name
        assert metrics["eval_mean_margin"] == pytest.approx(base["eval_mean_margin"], abs=SCORE_TOLERANCE)
    # Packing computes no pad token; sharing computes each prompt once.
    assert runs["packed"]["train_padded_tokens"] == runs["packed"]["train_tokens"] == base["train_tokens"]
    assert base["train_padded_tokens"] > base["train_tokens"]
    # Rows as wide as the longest pair (the default) keep a little padding at their ends, less than padded rows.
    assert runs["shared"]["train_tokens"] <= runs["packed+shared"]["train_padded_tokens"]
    assert runs["packed+shared"]["train_padded_tokens"] <= runs["shared"]["train_padded_tokens"]
    assert runs["shared"]["train_tokens"] < 0.8 * base["train_tokens"]


def test_a_decoder_without_pad_token_pads_with_eos_and_scores_like_transformers(tmp_path):
    base = save_tiny_llama(tmp_path / "base", pad_token=False)
    assert AutoTokenizer.from_pretrained(base).pad_token is None
    pairs = polite_rude_pairs(48, seed=3)
    padded = train(pairs, config(base, epochs=1), output_dir=tmp_path / "padded")
    packed = train(
        pairs, config(base, epochs=1, packing=True, share_prompt=True), output_dir=tmp_path / "packed"
    )
    # The eos token is the pad token and ends every sequence; both read the last token that is not it.
    assert packed.metrics["train_losses"] == pytest.approx(padded.metrics["train_losses"], abs=LOSS_TOLERANCE)

    tokenizer = AutoTokenizer.from_pretrained(packed.model_dir)
    assert tokenizer.pad_token == tokenizer.eos_token == "[SEP]"
    model = AutoModelForSequenceClassification.from_pretrained(packed.model_dir).eval()
    assert model.config.pad_token_id == tokenizer.eos_token_id
    items = [(p.prompt, p.chosen) for p in pairs[:4]]
    plain = plain_scores(model, tokenizer, items)
    assert load_scorer(packed.model_dir).score(items) == pytest.approx(plain, abs=1e-5)


def test_packing_an_encoder_is_refused_with_a_clear_error(tiny_model, tmp_path):
    with pytest.raises(ValueError, match="causal decoder with a `score` head"):
        train(polite_rude_pairs(16), config(tiny_model, packing=True), output_dir=tmp_path)


# --- throughput -------------------------------------------------------------------------------------------


def test_throughput_and_mfu_are_reported_live_and_in_the_metrics(tiny_llama, tmp_path):
    pairs = polite_rude_pairs(32, seed=2)
    progress = []
    result = train(pairs, config(tiny_llama, epochs=1, peak_tflops=1.0), output_dir=tmp_path / "a",
                   on_progress=progress.append)  # fmt: skip
    metrics = result.metrics
    assert metrics["train_flops_per_token"] == 6 * metrics["parameters"]
    assert metrics["train_peak_flops"] == 1e12
    expected = 6 * metrics["parameters"] * metrics["train_tokens"] / metrics["train_seconds"] / 1e12
    assert metrics["train_mfu"] == pytest.approx(expected)
    assert all(p["mfu"] > 0 and p["tokens_per_s"] > 0 and p["pairs_per_s"] > 0 for p in progress)
    # On CPU with no configured peak there is nothing to divide by: MFU is n/a, not a made-up number.
    plain = train(pairs, config(tiny_llama, epochs=1), output_dir=tmp_path / "b").metrics
    assert plain["train_mfu"] is None and plain["train_tokens_per_s"] > 0


# --- LoRA -------------------------------------------------------------------------------------------------


def test_lora_merged_trains_checkpoints_resumes_and_saves_a_plain_transformers_model(tiny_llama, tmp_path):
    pairs = polite_rude_pairs(64, seed=4)
    cfg = config(tiny_llama, mode="lora-merged", lr=1e-2, lora_r=4, checkpoint_every=2, packing=True)
    straight = train(pairs, cfg, output_dir=tmp_path / "straight")
    assert straight.metrics["trainable_parameters"] < straight.metrics["parameters"]
    assert straight.metrics["train_flops_per_token"] == 4 * straight.metrics["parameters"]
    assert straight.metrics["train_losses"][-1] < 0.5 * straight.metrics["train_losses"][0]

    polls = []
    with pytest.raises(Cancelled):
        train(
            pairs, cfg, output_dir=tmp_path / "resumed", should_stop=lambda: polls.append(1) or len(polls) > 3
        )
    kept = checkpoints.list_complete(tmp_path / "resumed" / "checkpoints")
    assert [c.step for c in kept] == [2]
    # LoRA checkpoints hold what trains (adapters and head), not the frozen base.
    saved = torch.load(kept[0].path / "model.pt", weights_only=True)
    assert saved and all("lora_" in key or "score" in key for key in saved)
    resumed = train(pairs, cfg, output_dir=tmp_path / "resumed")
    assert resumed.resumed_from_step == 2
    assert resumed.metrics["train_losses"] == pytest.approx(straight.metrics["train_losses"][2:], abs=1e-6)

    a, b = weights(straight.model_dir), weights(resumed.model_dir)
    assert not any("lora" in key for key in a)  # merged: a plain transformers model
    assert_same_weights(a, b, atol=1e-6)
    held_out = evaluate(straight.model_dir, polite_rude_pairs(16, seed=5), objective="bt")
    assert held_out["accuracy"] >= 0.9


def test_lora_adapters_are_saved_beside_the_base_and_load_with_peft(tiny_llama, tmp_path):
    pairs = polite_rude_pairs(48, seed=6)
    result = train(pairs, config(tiny_llama, mode="lora-adapters", lora_r=4, lr=1e-2), output_dir=tmp_path)
    model_dir = Path(result.model_dir)
    assert (model_dir / "adapter_config.json").exists()
    assert not (model_dir / "model.safetensors").exists()  # the base weights stay the base model's
    assert json.loads((model_dir / "arbiter.json").read_text())["adapters_of"] == tiny_llama

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    base = AutoModelForSequenceClassification.from_pretrained(tiny_llama, num_labels=1)
    model = PeftModel.from_pretrained(base, model_dir).eval()
    items = [(p.prompt, p.chosen) for p in pairs[:6]] + [(p.prompt, p.rejected) for p in pairs[:6]]
    plain = plain_scores(model, tokenizer, items)
    assert load_scorer(model_dir).score(items) == pytest.approx(plain, abs=1e-5)


# --- the training process and the saved model agree --------------------------------------------------------


@pytest.mark.parametrize("mode", ["full", "lora-merged"])
def test_training_process_and_saved_fp32_model_score_alike(tiny_llama, tmp_path, mode):
    everything = polite_rude_pairs(64, seed=7)
    pairs, held_out = everything[:48], everything[48:]  # items 0-23 train, 24-31 held out
    result = train(pairs, config(tiny_llama, mode=mode, epochs=1), output_dir=tmp_path, eval_pairs=held_out)
    reloaded = evaluate(result.model_dir, held_out, objective="bt")  # fp32, from disk
    assert reloaded["mean_margin"] == pytest.approx(result.metrics["eval_mean_margin"], abs=SCORE_TOLERANCE)
    assert reloaded["loss"] == pytest.approx(result.metrics["eval_loss"], abs=SCORE_TOLERANCE)
    assert reloaded["accuracy"] == result.metrics["eval_accuracy"]


# --- FSDP under torchrun ----------------------------------------------------------------------------------


def torchrun(spec: dict, folder: Path) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    spec_path = folder / "spec.json"
    spec_path.write_text(json.dumps(spec))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "rewardtrain.trainer.training", "--spec", str(spec_path)]  # fmt: skip
    done = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )  # noqa: S603
    result = json.loads((Path(spec["output_dir"]) / "result.json").read_text())
    assert done.returncode == 0 and result["status"] == "completed", done.stderr[-3000:]
    return result


SHARDED = {"gradient_checkpointing": True}  # activation checkpointing inside the FSDP units too


@pytest.mark.slow
def test_fsdp_on_two_processes_matches_one_process_checkpoints_resumes_and_saves(tiny_llama, tmp_path):
    pairs = polite_rude_pairs(64, seed=1)
    write_pairs_jsonl(pairs, tmp_path / "pairs.jsonl")
    values = dict(base_model=tiny_llama, lr=3e-3, epochs=2, batch_size=8, max_length=64, eval_fraction=0.25,
                  progress_every=1, num_threads=1)  # fmt: skip
    sharded = torchrun(
        {"config": {**values, "mode": "fsdp", "checkpoint_every": 2, "keep_checkpoints": 10, **SHARDED},
         "pairs_path": str(tmp_path / "pairs.jsonl"), "output_dir": str(tmp_path / "fsdp")},
        tmp_path / "fsdp",
    )  # fmt: skip
    # One process with two micro-batches per step sees what the two ranks see together.
    alone = train(pairs, TrainConfig(**values, grad_accum=2, checkpoint_every=0), output_dir=tmp_path / "one")
    metrics = sharded["metrics"]
    assert metrics["world_size"] == 2 and metrics["mode"] == "fsdp"
    assert metrics["trainable_parameters"] == alone.metrics["trainable_parameters"]
    assert metrics["train_losses"] == pytest.approx(alone.metrics["train_losses"], abs=LOSS_TOLERANCE)
    assert metrics["train_losses"][-1] < 0.5 * metrics["train_losses"][0]
    assert metrics["eval_mean_margin"] == pytest.approx(
        alone.metrics["eval_mean_margin"], abs=SCORE_TOLERANCE
    )
    assert_same_weights(weights(sharded["model_dir"]), weights(alone.model_dir), atol=1e-5)

    # A machine lost after step 4: a new output folder holding only that checkpoint resumes from it.
    kept = checkpoints.list_complete(tmp_path / "fsdp" / "checkpoints")
    assert [c.step for c in kept] == [2, 4]
    shutil.copytree(kept[-1].path, tmp_path / "again" / "checkpoints" / kept[-1].path.name)
    again = torchrun(
        {"config": {**values, "mode": "fsdp", "checkpoint_every": 2, "keep_checkpoints": 10, **SHARDED},
         "pairs_path": str(tmp_path / "pairs.jsonl"), "output_dir": str(tmp_path / "again")},
        tmp_path / "again",
    )  # fmt: skip
    assert again["resumed_from_step"] == 4
    assert again["metrics"]["train_losses"] == pytest.approx(metrics["train_losses"][4:], abs=1e-6)
    assert_same_weights(weights(again["model_dir"]), weights(sharded["model_dir"]), atol=1e-6)
