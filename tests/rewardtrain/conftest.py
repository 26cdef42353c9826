from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest

from tests.rewardtrain.rewardtrain_toys import save_tiny_bert, save_tiny_llama


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    """A 2-layer, hidden-32 BERT with the MiniLM tokenizer, saved as a base-model folder."""
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> str:
    """A 2-layer, hidden-32 Llama-style decoder (score head) with the MiniLM tokenizer, saved as a base model."""
    return save_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))
