"""The model a run trains: any AutoModelForSequenceClassification, whole, with LoRA or sharded with FSDP2,
giving one score per sequence from padded rows or from packed rows (see data.collate_packed).

Also the model's state for checkpoints (full state dicts on rank 0, whatever the sharding) and its size for
model FLOPs.
"""

from __future__ import annotations

import contextlib

import torch
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_state_dict,
    set_state_dict,
)
from torch.nn.parallel import DistributedDataParallel

from rewardtrain.trainer.modes import LORA_MODES


class RewardModel(torch.nn.Module):
    """One float32 score per sequence, chosen rows first then rejected rows.

    Padded batches go through the transformers model as they are (its head pools the last non-pad token of
    a decoder, the first token of an encoder). Packed batches (`position_ids`, a block mask, and the flat
    positions of each pair's last chosen and rejected token) go through the decoder's backbone, and the
    score head reads only the positions asked for: no pad token is computed or scored.
    """

    def __init__(self, model):
        super().__init__()
        self.model = model  # a transformers model, or peft's wrapper around one

    @property
    def hf(self):
        """The transformers model (inside peft's wrapper, whose LoRA layers sit in it in place)."""
        return self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model

    def forward(self, input_ids, attention_mask, position_ids=None, chosen_at=None, rejected_at=None):
        if position_ids is None:
            logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits
            return logits.float().squeeze(-1).clone()  # not a view: FSDP hooks the output for backward
        hf = self.hf
        hidden = hf.base_model(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids
        ).last_hidden_state
        picked = hidden.reshape(-1, hidden.shape[-1])[torch.cat([chosen_at, rejected_at])]
        return hf.score(picked).float().squeeze(-1).clone()


def check_packable(hf) -> None:
    if not hasattr(hf, "score") or not hasattr(hf, "base_model"):
        raise ValueError(
            f"packing and share_prompt need a causal decoder with a `score` head (Llama, Qwen, Mistral, "
            f"Gemma, GPT-2, …); {type(hf).__name__} has none: train it with packing and share_prompt off"
        )


def apply_lora(model, *, r: int, alpha: float, dropout: float, targets: str):
    """peft LoRA on the given linear layers ("all-linear", or names separated by commas); the head trains whole."""
    from peft import LoraConfig, TaskType, get_peft_model

    target_modules = (
        targets if targets == "all-linear" else [t.strip() for t in targets.split(",") if t.strip()]
    )
    lora = LoraConfig(
        task_type=TaskType.SEQ_CLS, r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=target_modules
    )
    return get_peft_model(model, lora)


def block_list(module: torch.nn.Module) -> torch.nn.ModuleList:
    """The transformer blocks: the ModuleList with the most parameters (layers, h, encoder.layer, …)."""
    lists = [m for m in module.modules() if isinstance(m, torch.nn.ModuleList) and len(m)]
    if not lists:
        raise ValueError(f"{type(module).__name__} has no list of blocks to shard")
    return max(lists, key=lambda m: sum(p.numel() for p in m.parameters()))


def shard(wrapper: RewardModel, *, bf16: bool) -> RewardModel:
    """FSDP2: each block its own unit, the rest (embeddings, final norm, head) the root's; bf16 compute with
    fp32 gradient reduction when asked (the optimizer keeps fp32 master weights either way)."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    policy = (
        MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
        if bf16
        else MixedPrecisionPolicy()
    )
    for block in block_list(wrapper):
        fully_shard(block, mp_policy=policy)
    fully_shard(wrapper, mp_policy=policy)
    return wrapper


def unwrap(model) -> RewardModel:
    return model.module if isinstance(model, DistributedDataParallel) else model


def gradient_sync(model, sync: bool):
    """Reduce gradients on this backward (the last micro-batch of a step) or not (the ones before)."""
    if sync:
        return contextlib.nullcontext()
    if isinstance(model, DistributedDataParallel):
        return model.no_sync()
    if hasattr(model, "set_requires_gradient_sync"):  # an FSDP2 module
        return _fsdp_no_sync(model)
    return contextlib.nullcontext()


@contextlib.contextmanager
def _fsdp_no_sync(model):
    model.set_requires_gradient_sync(False)
    try:
        yield
    finally:
        model.set_requires_gradient_sync(True)


def flop_parameters(hf) -> int:
    """Parameters that do matrix multiplies per token: all but the input embedding table (a lookup)."""
    total = sum(p.numel() for p in hf.parameters())
    embeddings = hf.get_input_embeddings()
    return total - (embeddings.weight.numel() if embeddings is not None else 0)


def _options(mode: str, **extra) -> StateDictOptions:
    return StateDictOptions(full_state_dict=True, ignore_frozen_params=mode in LORA_MODES, **extra)


def training_state(model, optimizer, mode: str) -> tuple[dict, dict]:
    """Full model and optimizer state dicts on CPU (every rank must call it under FSDP; rank 0 writes them).

    LoRA keeps only what trains (adapters and head): the base weights are the base model's.
    """
    return get_state_dict(model, optimizer, options=_options(mode, cpu_offload=True))


def load_training_state(
    model, optimizer, model_state: dict, optimizer_state: dict, mode: str, *, broadcast: bool
):
    """Load full state dicts; with `broadcast`, rank 0 holds them and the other ranks pass empty dicts."""
    set_state_dict(
        model,
        optimizer,
        model_state_dict=model_state,
        optim_state_dict=optimizer_state,
        options=_options(mode, strict=mode not in LORA_MODES, broadcast_from_rank0=broadcast),
    )


def full_model_state(model) -> dict:
    """The transformers model's full state dict on CPU (a collective under FSDP), keys as transformers names them."""
    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return {key.removeprefix("model."): value for key, value in state.items()}
