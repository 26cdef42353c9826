"""Reward- and cost-model training, evaluation and scoring. torch and transformers; no Django.

See training.md next to this file for what the trainer guarantees and why it is built this way.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import math
import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    get_linear_schedule_with_warmup,
    set_seed,
)

from rewardtrain.trainer import checkpoints, ddp, procs, wrapping
from rewardtrain.trainer.calibration import HELD_OUT_SCORES
from rewardtrain.trainer.data import (
    EncodedPairs,
    Pair,
    collate,
    collate_grouped,
    collate_packed,
    distinct_sequences,
    encode,
    encode_pairs,
    group_lengths,
    item_groups,
    length_grouped_batches,
    pad,
    pair_token_counts,
    pairs_fingerprint,
    prepare_tokenizer,
    read_pairs_jsonl,
    render,
    split_by_item,
    write_pairs_jsonl,
)
from rewardtrain.trainer.modes import LORA_MODES, MODES
from rewardtrain.trainer.wrapping import RewardModel, unwrap

__all__ = [
    "Cancelled",
    "Pair",
    "ResumeMismatch",
    "Scorer",
    "TrainConfig",
    "TrainResult",
    "evaluate",
    "load_scorer",
    "main",
    "read_pairs_jsonl",
    "render",
    "split_by_item",
    "train",
    "write_pairs_jsonl",
]

OBJECTIVES = ("bt", "bt-margin", "cost")
MODEL_META_FILE = "arbiter.json"
RENDERING = "hh-turns-v1"  # bump when `render` changes: saved models record the rendering they expect

# Fields that change the arithmetic of training; a checkpoint is only resumed under the same values.
# (group_pairs too, added to the fingerprint only when set: see _fingerprint.)
RESUME_FIELDS = (
    "objective", "base_model", "epochs", "lr", "batch_size", "grad_accum", "max_length", "seed", "warmup_ratio",
    "weight_decay", "margin_scale", "max_grad_norm", "disable_dropout", "group_megabatches", "sign_weight",
    "mode", "lora_r", "lora_alpha", "lora_dropout", "lora_targets", "packing", "share_prompt", "pack_length",
)  # fmt: skip


@dataclass(kw_only=True)
class TrainConfig:
    base_model: str  # local path of an AutoModelForSequenceClassification checkpoint (a 1-logit head is made)
    objective: str = "bt"  # "bt" | "bt-margin" | "cost"
    epochs: int = 1
    lr: float = 2e-5
    batch_size: int = 16  # pairs per micro-batch per process (2 × batch_size sequences per forward)
    grad_accum: int = 1  # micro-batches per optimizer step per process
    max_length: int = 256  # tokens per rendered prompt+response, truncated from the left
    seed: int = 0
    eval_fraction: float = 0.1  # share of items held out (ignored when train() is given eval_pairs)
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0  # AdamW, not applied to biases and LayerNorm weights
    checkpoint_every: int = 50  # optimizer steps; 0 = never
    keep_checkpoints: int = 2
    gradient_checkpointing: bool = False
    margin_scale: float = 1.0  # m = margin_scale × pair.margin in -log σ(r_c − r_r − m)
    sign_weight: float = 1.0  # weight of the cost objective's per-response sign term
    max_grad_norm: float = 1.0  # 0 = no clipping
    disable_dropout: bool = True  # as TRL's RewardTrainer: the pairwise loss is cleaner without dropout noise
    group_megabatches: int = 8  # length grouping: sort within this many batches; 0 = plain shuffled batches
    bf16: bool = True  # bf16 autocast on CUDA (ignored on CPU)
    tf32: bool = True  # TF32 matmuls on CUDA
    device: str | None = None  # None = CUDA when available, else CPU
    num_threads: int | None = None  # CPU threads per process; None = usable cores ÷ processes on this host
    eval_batch_size: int = 64
    progress_every: int = 5  # optimizer steps between on_progress calls (also on the last step)
    mode: str = "full"  # "full" | "lora-merged" | "lora-adapters" | "fsdp" (see modes.py)
    lora_r: int = 16
    lora_alpha: float = 32.0
    lora_dropout: float = 0.0
    lora_targets: str = "all-linear"  # or module names separated by commas, e.g. "q_proj,v_proj"
    packing: bool = False  # padding-free rows (decoders): sequences end to end, own positions, block mask
    share_prompt: bool = False  # chosen and rejected share their common prefix in one row (decoders)
    pack_length: int = 0  # packed row width; 0 = the micro-batch's longest sequence (pair when sharing)
    peak_tflops: float | None = None  # device peak for MFU; None = known CUDA GPUs' bf16 dense peak, else n/a
    # Batches of whole items: every pair of an item_key (a ranking's K(K−1)/2 pairs) in one micro-batch, each
    # distinct response scored once; batch_size then counts items, not pairs (training.md, "Grouped batches").
    group_pairs: bool = False

    def __post_init__(self) -> None:
        self.base_model = os.fspath(self.base_model)  # a pathlib.Path is welcome too

    def validate(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        for name in ("epochs", "batch_size", "grad_accum", "max_length", "eval_batch_size", "progress_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.checkpoint_every < 0 or self.keep_checkpoints < 1:
            raise ValueError("checkpoint_every must be >= 0 and keep_checkpoints >= 1")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.lora_r < 1 or self.lora_alpha <= 0 or not 0 <= self.lora_dropout < 1:
            raise ValueError("lora_r must be >= 1, lora_alpha > 0 and lora_dropout in [0, 1)")
        if self.pack_length < 0:
            raise ValueError(f"pack_length must be >= 0, got {self.pack_length}")
        if self.group_pairs and self.share_prompt:
            raise ValueError(
                "group_pairs and share_prompt cannot be combined: grouped batches already score each response "
                "once per batch (K forward sequences for K ranked responses); turn share_prompt off"
            )
        if self.peak_tflops is not None and self.peak_tflops <= 0:
            raise ValueError(f"peak_tflops must be positive, got {self.peak_tflops}")

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig fields: {unknown}")
        return cls(**values)


@dataclass
class TrainResult:
    metrics: dict
    model_dir: str  # the final model in Hugging Face format with its tokenizer
    resumed_from_step: int | None  # None when the run started from the base model


class Cancelled(Exception):  # noqa: N818 - the name the callers speak
    """Training stopped because should_stop() returned true. No checkpoint is written for the stop itself."""

    def __init__(self, step: int, total_steps: int):
        super().__init__(f"training cancelled before step {step + 1} of {total_steps}")
        self.step = step
        self.total_steps = total_steps


class ResumeMismatch(ValueError):
    """output_dir holds checkpoints of a run with other data, config or number of processes."""


# --- model and tokenizer ------------------------------------------------------------------------------------


def load_tokenizer(path: str):
    return prepare_tokenizer(
        AutoTokenizer.from_pretrained(path, truncation_side="left", padding_side="right")
    )


def load_model(path: str, tokenizer):
    model = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=1, ignore_mismatched_sizes=True, dtype=torch.float32
    )
    # Sequence-classification heads of decoder models find the last real token through pad_token_id.
    model.config.pad_token_id = tokenizer.pad_token_id
    text_config = model.config.get_text_config()
    if text_config is not model.config:
        text_config.pad_token_id = tokenizer.pad_token_id
    if hasattr(model.config, "use_cache"):
        model.config.use_cache = False
    return model


def _enable_activation_checkpointing(model) -> None:
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x renamed it
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def _autocast(device: torch.device, bf16: bool):
    if device.type == "cuda" and bf16 and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _configure_backends(ctx: ddp.DistContext, config: TrainConfig) -> None:
    torch.set_num_threads(config.num_threads or max(1, ddp.usable_cpus() // max(ctx.local_world_size, 1)))
    if ctx.device.type == "cuda":
        torch.set_float32_matmul_precision("high" if config.tf32 else "highest")
        conv = getattr(torch.backends.cudnn, "conv", None)
        if conv is not None and hasattr(conv, "fp32_precision"):
            conv.fp32_precision = "tf32" if config.tf32 else "ieee"
        else:
            torch.backends.cudnn.allow_tf32 = config.tf32


def _optimizer(model, config: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim < 2 or "norm" in name.lower() else decay).append(param)
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    # The fused kernel (CPU and CUDA) is what transformers' Trainer picks too on torch >= 2.8.
    return torch.optim.AdamW(groups, lr=config.lr, fused=device.type in ("cpu", "cuda"))


# --- losses ---------------------------------------------------------------------------------------------------


def objective_loss(
    scores: torch.Tensor,
    margin: torch.Tensor,
    safe: torch.Tensor,
    config: TrainConfig,
) -> torch.Tensor:
    """Loss of one batch of scores laid out [chosen rows..., rejected rows...].

    bt:        -log σ(r_c − r_r)
    bt-margin: -log σ(r_c − r_r − margin_scale·m)
    cost:      -log σ(c_unsafer − c_safer)  + sign_weight · Σ_labelled -log σ(s·c) / pairs,
               s = +1 unsafe, −1 safe (Safe-RLHF: cost > 0 means unsafe); unlabelled responses add nothing.
    """
    chosen, rejected = scores.chunk(2)
    if config.objective == "bt":
        return -F.logsigmoid(chosen - rejected).mean()
    if config.objective == "bt-margin":
        return -F.logsigmoid(chosen - rejected - config.margin_scale * margin).mean()
    pairwise = -F.logsigmoid(rejected - chosen).mean()
    labelled = safe >= 0
    sign = torch.where(safe == 1, -1.0, 1.0).to(scores.dtype)
    sign_term = (-F.logsigmoid(sign * scores) * labelled).sum() / chosen.numel()
    return pairwise + config.sign_weight * sign_term


def pair_metrics(chosen: Sequence[float], rejected: Sequence[float], pairs: Sequence[Pair], config) -> dict:
    """Accuracy, margins and loss of scored pairs. For a cost model the margin is c(unsafer) − c(safer)."""
    if not pairs:
        return {}
    scores = torch.tensor(list(chosen) + list(rejected), dtype=torch.float64)
    margin = torch.tensor([p.margin for p in pairs], dtype=torch.float64)
    safe = torch.tensor(
        [-1 if p.chosen_safe is None else int(p.chosen_safe) for p in pairs]
        + [-1 if p.rejected_safe is None else int(p.rejected_safe) for p in pairs]
    )
    cost = config.objective == "cost"
    margins = [(r - c) if cost else (c - r) for c, r in zip(chosen, rejected, strict=True)]
    metrics = {
        "accuracy": sum(m > 0 for m in margins) / len(margins),
        "mean_margin": statistics.fmean(margins),
        "median_margin": statistics.median(margins),
        "loss": objective_loss(scores, margin, safe, config).item(),
        "margins": margins,
    }
    if cost:
        metrics["safer_accuracy"] = metrics["accuracy"]
        signs = [
            (s > 0) == (lab == 0) for s, lab in zip(scores.tolist(), safe.tolist(), strict=True) if lab >= 0
        ]
        metrics["sign_accuracy"] = sum(signs) / len(signs) if signs else None
    return metrics


# --- scoring --------------------------------------------------------------------------------------------------


class Scorer:
    """Batched scoring of (prompt, response) pairs with a trained model: rewards, or costs for a cost model."""

    def __init__(
        self, model, tokenizer, *, max_length: int, device: torch.device | str | None = None, bf16=True
    ):
        self.tokenizer = prepare_tokenizer(tokenizer)
        self.max_length = max_length
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.model = model.to(self.device)
        self.bf16 = bf16

    def score(self, items: Sequence[tuple[Sequence[dict], str]], batch_size: int = 64) -> list[float]:
        return self.score_texts([render(prompt, response) for prompt, response in items], batch_size)

    def score_texts(self, texts: Sequence[str], batch_size: int = 64) -> list[float]:
        return self.score_ids(encode(self.tokenizer, texts, self.max_length), batch_size)

    def score_ids(self, ids: Sequence[Sequence[int]], batch_size: int = 64) -> list[float]:
        # Longest first, so each batch pads to lengths close to its own and memory peaks at the start.
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]), reverse=True)
        out = [0.0] * len(ids)
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode(), _autocast(self.device, self.bf16):
                for start in range(0, len(order), batch_size):
                    chunk = order[start : start + batch_size]
                    input_ids, mask = pad([ids[i] for i in chunk], self.tokenizer.pad_token_id)
                    logits = self.model(
                        input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device)
                    ).logits
                    for i, value in zip(chunk, logits.float().squeeze(-1).tolist(), strict=True):
                        out[i] = value
        finally:
            self.model.train(was_training)
        return out


def load_scorer(
    model_dir: str | Path, device: str | None = None, *, max_length: int | None = None, bf16: bool = True
) -> Scorer:
    """A Scorer for a saved model; max_length defaults to the one the model was trained with."""
    model_dir = Path(model_dir)
    meta_path = model_dir / MODEL_META_FILE
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    tokenizer = load_tokenizer(str(model_dir))
    adapter_config = model_dir / "adapter_config.json"
    if adapter_config.exists():  # LoRA adapters saved beside their base model: load both, merge for speed
        from peft import PeftModel

        base = meta.get("adapters_of") or json.loads(adapter_config.read_text())["base_model_name_or_path"]
        model = PeftModel.from_pretrained(load_model(base, tokenizer), str(model_dir)).merge_and_unload()
    else:
        model = AutoModelForSequenceClassification.from_pretrained(str(model_dir), dtype=torch.float32)
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    length = max_length or meta.get("max_length") or min(tokenizer.model_max_length, 512)
    return Scorer(model, tokenizer, max_length=length, device=device, bf16=bf16)


def evaluate(
    model_dir: str | Path,
    pairs: Sequence[Pair],
    *,
    objective: str,
    batch_size: int = 64,
    device: str | None = None,
    margin_scale: float = 1.0,
) -> dict:
    """Score held-out pairs: accuracy, mean/median margin, loss, and per-pair scores.

    `per_pair[i]` = {"item_key", "chosen", "rejected", "margin"}: the scores of pairs[i] (rewards, or costs for
    the cost objective, whose margin is then cost(rejected=unsafer) − cost(chosen=safer)).
    """
    scorer = load_scorer(model_dir, device)
    return score_pairs(scorer, pairs, objective=objective, batch_size=batch_size, margin_scale=margin_scale)


def score_pairs(scorer: Scorer, pairs, *, objective: str, batch_size: int = 64, margin_scale: float = 1.0):
    config = TrainConfig(base_model="", objective=objective, margin_scale=margin_scale)
    config.validate()
    encoded = encode_pairs(scorer.tokenizer, pairs, scorer.max_length)
    scores = scorer.score_ids(encoded.chosen + encoded.rejected, batch_size)
    chosen, rejected = scores[: len(pairs)], scores[len(pairs) :]
    metrics = pair_metrics(chosen, rejected, pairs, config)
    margins = metrics.pop("margins", [])
    metrics["pairs"] = len(pairs)
    metrics["per_pair"] = [
        {"item_key": p.item_key, "chosen": c, "rejected": r, "margin": m}
        for p, c, r, m in zip(pairs, chosen, rejected, margins, strict=True)
    ]
    return metrics


# --- the training loop ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    """Which pairs each optimizer step uses: a pure function of the data, config and number of processes."""

    lengths: list[int]
    batch_size: int
    grad_accum: int
    world_size: int
    seed: int
    megabatch: int
    # With grouped batches: the pair indices of each group; `lengths` are then the groups' and batches hold groups.
    groups: list[list[int]] | None = None

    @property
    def batches_per_epoch(self) -> int:
        n = math.ceil(len(self.lengths) / self.batch_size) if self.megabatch <= 1 else self._grouped_count()
        return math.ceil(n / self.world_size) * self.world_size

    def _grouped_count(self) -> int:
        span = self.batch_size * self.megabatch
        full, rest = divmod(len(self.lengths), span)
        return full * self.megabatch + math.ceil(rest / self.batch_size)

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.batches_per_epoch / (self.grad_accum * self.world_size))

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        batches = length_grouped_batches(self.lengths, self.batch_size, self.seed, epoch, self.megabatch)
        if self.groups is not None:
            batches = [[i for g in batch for i in self.groups[g]] for batch in batches]
        # Every rank needs the same number of micro-batches: wrap around, as DistributedSampler does.
        short = self.batches_per_epoch - len(batches)
        return batches + [batches[i % len(batches)] for i in range(short)]

    def step_batches(self, batches: list[list[int]], step_in_epoch: int) -> list[list[int]]:
        """All ranks' micro-batches of one step, rank r owning positions r, r+W, r+2W, …"""
        span = self.grad_accum * self.world_size
        return batches[step_in_epoch * span : (step_in_epoch + 1) * span]


def _fingerprint(config: TrainConfig, train_pairs: Sequence[Pair], world_size: int) -> str:
    payload = {name: getattr(config, name) for name in RESUME_FIELDS}
    if config.group_pairs:  # only then, so runs checkpointed before the field existed still resume
        payload["group_pairs"] = True
    payload["world_size"] = world_size
    payload["pairs"] = pairs_fingerprint(train_pairs)
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


# bf16 dense peak FLOP/s of GPUs by a part of their name (NVIDIA data sheets, without sparsity); first match wins.
GPU_BF16_PEAK = (
    ("H200", 989e12), ("H100 PCIe", 756e12), ("H100", 989e12), ("GH200", 989e12), ("B200", 2250e12),
    ("A100", 312e12), ("L40S", 362e12), ("L4", 121e12), ("A10", 125e12), ("RTX 4090", 165e12),
)  # fmt: skip


def peak_flops(device: torch.device, config: TrainConfig) -> float | None:
    """The device's peak for MFU: config.peak_tflops, else a known CUDA GPU's bf16 dense peak, else None (n/a)."""
    if config.peak_tflops is not None:
        return config.peak_tflops * 1e12
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for part, value in GPU_BF16_PEAK:
            if part in name:
                return value
    return None


def train(
    pairs: Sequence[Pair],
    config: TrainConfig,
    *,
    output_dir: str | Path,
    on_progress: Callable[[dict], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    eval_pairs: Sequence[Pair] | None = None,
) -> TrainResult:
    """Train a reward (or cost) model; resume from the newest complete checkpoint in output_dir/checkpoints.

    Pairs are split by item with config.eval_fraction and config.seed unless `eval_pairs` is given (then every
    pair in `pairs` trains, and no item may be on both sides). Under torchrun every rank calls this with the
    same pairs; only rank 0 calls on_progress / should_stop and writes checkpoints and the model. Raises
    Cancelled when should_stop() turns true between steps, ResumeMismatch when output_dir holds another run.
    """
    config.validate()
    ctx = ddp.setup(config.device, group_of_one=config.mode == "fsdp")
    try:
        return _train(ctx, list(pairs), config, Path(output_dir), on_progress, should_stop, eval_pairs)
    finally:
        ddp.teardown(ctx)


def _build_model(ctx, config: TrainConfig, tokenizer):
    """The wrapped model ready to train (LoRA, DDP or FSDP as the mode says) and its matmul parameter count."""
    model = load_model(config.base_model, tokenizer)
    if config.disable_dropout:
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
    if config.packing or config.share_prompt:
        wrapping.check_packable(model)
    if config.gradient_checkpointing:
        _enable_activation_checkpointing(model)
    flop_params = wrapping.flop_parameters(model)
    if config.mode in LORA_MODES:
        model = wrapping.apply_lora(
            model,
            r=config.lora_r,
            alpha=config.lora_alpha,
            dropout=config.lora_dropout,
            targets=config.lora_targets,
        )
    wrapper = RewardModel(model).to(ctx.device)
    if config.mode == "fsdp":
        bf16 = ctx.device.type == "cuda" and config.bf16 and torch.cuda.is_bf16_supported()
        return wrapping.shard(wrapper, bf16=bf16), flop_params
    if ctx.distributed:
        device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(wrapper, device_ids=device_ids), flop_params
    return wrapper, flop_params


def _train(ctx, pairs, config, output_dir, on_progress, should_stop, eval_pairs) -> TrainResult:
    _configure_backends(ctx, config)
    set_seed(config.seed)  # before loading: the new reward head's initialisation comes from it
    if eval_pairs is None:
        train_pairs, eval_pairs = split_by_item(pairs, config.eval_fraction, config.seed)
    else:
        train_pairs, eval_pairs = pairs, list(eval_pairs)
        shared = {p.item_key for p in train_pairs} & {p.item_key for p in eval_pairs}
        if shared:
            raise ValueError(
                f"{len(shared)} item(s) are in both train and eval pairs, e.g. {sorted(shared)[0]!r}"
            )
    if not train_pairs:
        raise ValueError("no training pairs")

    tokenizer = load_tokenizer(config.base_model)
    model, flop_params = _build_model(ctx, config, tokenizer)
    data = encode_pairs(tokenizer, train_pairs, config.max_length)
    groups = item_groups(train_pairs) if config.group_pairs else None
    plan = _Plan(
        lengths=group_lengths(data, groups) if groups is not None else data.lengths(),
        batch_size=config.batch_size,
        grad_accum=config.grad_accum,
        world_size=ctx.world_size,
        seed=config.seed,
        megabatch=config.group_megabatches,
        groups=groups,
    )
    total_steps = plan.steps_per_epoch * config.epochs
    optimizer = _optimizer(model, config, ctx.device)
    scheduler = get_linear_schedule_with_warmup(
        optimizer, math.ceil(total_steps * config.warmup_ratio), total_steps
    )

    fingerprint = _fingerprint(config, train_pairs, ctx.world_size)
    ckpt_root = output_dir / "checkpoints"
    found = checkpoints.latest(ckpt_root) if ctx.is_main else None
    found = ddp.broadcast_object(ctx, found)
    start_step = 0
    if found is not None:
        if found.state.get("fingerprint") != fingerprint:
            raise ResumeMismatch(
                f"{found.path} was written by a run with other pairs, config or process count; "
                "use a fresh output_dir"
            )
        model_state, optimizer_state = checkpoints.load(found, scheduler=scheduler)
        wrapping.load_training_state(
            model, optimizer, model_state, optimizer_state, config.mode, broadcast=False
        )
        start_step = found.step

    loop = _Loop(ctx, config, model, optimizer, scheduler, data, plan, tokenizer.pad_token_id)
    loop.flops_per_token = (4 if config.mode in LORA_MODES else 6) * flop_params
    loop.peak = peak_flops(ctx.device, config)
    history = loop.run(start_step, total_steps, ckpt_root, fingerprint, on_progress, should_stop)

    metrics = {
        "train_pairs": len(train_pairs),
        "eval_pairs": len(eval_pairs),
        "steps": total_steps,
        "steps_run": total_steps - start_step,
        "world_size": ctx.world_size,
        "device": str(ctx.device),
        "mode": config.mode,
        "parameters": flop_params,
        # Sharded parameters are DTensors, whose numel() is the whole tensor's.
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        **history,
    }
    if ctx.device.type == "cuda":
        metrics["peak_memory_bytes"] = torch.cuda.max_memory_allocated(ctx.device)
    model_dir = output_dir / "model"
    names = ["accuracy", "mean_margin", "median_margin", "loss"]
    if config.objective == "cost":
        names += ["safer_accuracy", "sign_accuracy"]
    if config.mode == "fsdp":
        # The weights are spread over the ranks: gather them (every rank), save on rank 0, and evaluate the
        # saved model there in fp32 — the scores anyone loading it gets.
        state = wrapping.full_model_state(unwrap(model))
        if ctx.is_main:
            _save_model(unwrap(model).hf, tokenizer, config, model_dir, metrics, state_dict=state)
            if eval_pairs:
                scorer = load_scorer(model_dir, str(ctx.device), bf16=False)
                scored = score_pairs(scorer, eval_pairs, objective=config.objective,
                                     batch_size=config.eval_batch_size, margin_scale=config.margin_scale)  # fmt: skip
                metrics.update({f"eval_{name}": scored.get(name) for name in names})
                (model_dir / "metrics.json").write_text(json.dumps(metrics, indent=1))
                _write_json_atomic(output_dir / HELD_OUT_SCORES, scored["per_pair"])  # for the registry's ECEs
            else:
                metrics.update({f"eval_{name}": None for name in names})
    elif ctx.is_main:
        scored = {}
        if eval_pairs:
            scorer = Scorer(unwrap(model).model, tokenizer, max_length=config.max_length, device=ctx.device,
                            bf16=config.bf16)  # fmt: skip
            scored = score_pairs(scorer, eval_pairs, objective=config.objective,
                                 batch_size=config.eval_batch_size, margin_scale=config.margin_scale)  # fmt: skip
        metrics.update({f"eval_{name}": scored.get(name) for name in names})
        _save_model(unwrap(model).model, tokenizer, config, model_dir, metrics)
        if scored:  # the held-out pairs' scores, for the registry's ECEs
            _write_json_atomic(output_dir / HELD_OUT_SCORES, scored["per_pair"])
    return TrainResult(metrics=metrics, model_dir=str(model_dir), resumed_from_step=start_step or None)


class _Loop:
    flops_per_token: float = 0.0
    peak: float | None = None

    def __init__(
        self, ctx, config, model, optimizer, scheduler, data: EncodedPairs, plan: _Plan, pad_id: int
    ):
        self.ctx, self.config, self.model = ctx, config, model
        self.optimizer, self.scheduler = optimizer, scheduler
        self.data, self.plan, self.pad_id = data, plan, pad_id
        self._epoch, self._batches = -1, []
        self.packed = config.packing or config.share_prompt
        self.pair_tokens = pair_token_counts(data, config.share_prompt)
        self.computed_tokens = 0  # this rank's tokens through the model, padding included
        self.sequences = 0  # this rank's sequences through the model (grouped: each distinct response once)

    def batches(self, epoch: int) -> list[list[int]]:
        if epoch != self._epoch:
            self._epoch, self._batches = epoch, self.plan.epoch_batches(epoch)
        return self._batches

    def collate(self, indices: list[int]) -> dict[str, torch.Tensor]:
        if self.config.group_pairs:
            return collate_grouped(self.data, indices, self.pad_id, pack=self.config.packing,
                                   pack_length=self.config.pack_length)  # fmt: skip
        if self.packed:
            return collate_packed(self.data, indices, self.pad_id, pack=self.config.packing,
                                  share_prompt=self.config.share_prompt, pack_length=self.config.pack_length)  # fmt: skip
        return collate(self.data, indices, self.pad_id)

    def step(self, micro: list[list[int]]) -> float:
        """One optimizer step over this rank's micro-batches; returns the step's mean loss over all ranks."""
        ctx, model = self.ctx, self.model
        model.train()
        total = torch.zeros((), device=ctx.device)
        for i, indices in enumerate(micro):
            batch = self.collate(indices)
            self.computed_tokens += batch["input_ids"].numel()
            self.sequences += (
                len(batch["chosen_at"]) + len(batch["rejected_at"])
                if "chosen_at" in batch
                else batch["input_ids"].shape[0]
            )
            inputs = {
                key: batch[key].to(ctx.device, non_blocking=True)
                for key in ("input_ids", "attention_mask", "position_ids", "chosen_at", "rejected_at")
                if key in batch
            }
            # Gradients are reduced once per step, on the last micro-batch.
            with wrapping.gradient_sync(model, i == len(micro) - 1):
                with _autocast(ctx.device, self.config.bf16 and self.config.mode != "fsdp"):
                    scores = model(**inputs)
                if "chosen_index" in batch:  # grouped: one score per distinct sequence; pick each pair's two
                    picks = torch.cat([batch["chosen_index"], batch["rejected_index"]])
                    scores = scores[picks.to(ctx.device)]
                loss = objective_loss(
                    scores, batch["margin"].to(ctx.device), batch["safe"].to(ctx.device), self.config
                )
                (loss / len(micro)).backward()
            total += loss.detach()
        if self.config.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), self.config.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        # One host sync per step, not per micro-batch; ranks hold different batches, so average them.
        return ddp.mean_across_ranks(ctx, total / len(micro)).item()

    def batch_tokens(self, indices: list[int]) -> int:
        """Real tokens a micro-batch puts through the model (grouped: each distinct sequence once)."""
        if self.config.group_pairs:
            return sum(len(seq) for seq in distinct_sequences(self.data, indices)[0])
        return sum(self.pair_tokens[i] for i in indices)

    def mfu(self, tokens: float, seconds: float) -> float | None:
        if self.peak is None or seconds <= 0:
            return None
        return self.flops_per_token * tokens / seconds / (self.peak * self.ctx.world_size)

    def run(self, start_step, total_steps, ckpt_root, fingerprint, on_progress, should_stop) -> dict:
        ctx, config, plan = self.ctx, self.config, self.plan
        pairs_done = tokens_done = 0
        window_losses: list[float] = []
        losses: list[float] = []
        window_start, window_pairs, window_tokens = time.perf_counter(), 0, 0
        started, cpu_started = time.perf_counter(), time.process_time()
        for step in range(start_step, total_steps):
            if ddp.any_rank(ctx, ctx.is_main and should_stop is not None and bool(should_stop())):
                raise Cancelled(step, total_steps)
            epoch, in_epoch = divmod(step, plan.steps_per_epoch)
            everyone = plan.step_batches(self.batches(epoch), in_epoch)
            loss = self.step(everyone[ctx.rank :: ctx.world_size])

            step_pairs = sum(len(b) for b in everyone)
            step_tokens = sum(self.batch_tokens(b) for b in everyone)
            pairs_done += step_pairs
            tokens_done += step_tokens
            window_losses.append(loss)
            losses.append(loss)
            window_pairs += step_pairs
            window_tokens += step_tokens
            done = step + 1

            if config.checkpoint_every and done % config.checkpoint_every == 0 and done < total_steps:
                # Under FSDP gathering the state is a collective: every rank takes part, rank 0 writes.
                if ctx.is_main or config.mode == "fsdp":
                    model_state, optimizer_state = wrapping.training_state(
                        self.model, self.optimizer, config.mode
                    )
                if ctx.is_main:
                    checkpoints.save(
                        ckpt_root,
                        done,
                        model_state=model_state,
                        optimizer_state=optimizer_state,
                        scheduler=self.scheduler,
                        state={"fingerprint": fingerprint, "epoch": epoch, "total_steps": total_steps,
                               "next_batch": (in_epoch + 1) * plan.grad_accum * plan.world_size},
                        keep=config.keep_checkpoints,
                    )  # fmt: skip
            if (
                ctx.is_main
                and on_progress is not None
                and (done % config.progress_every == 0 or done == total_steps)
            ):
                now = time.perf_counter()
                window = max(now - window_start, 1e-9)
                per_step = (now - started) / (done - start_step)
                on_progress(
                    {
                        "step": done,
                        "total_steps": total_steps,
                        "epoch": done / plan.steps_per_epoch,
                        "loss": statistics.fmean(window_losses),
                        "pairs_per_s": window_pairs / window,
                        "tokens_per_s": window_tokens / window,
                        "mfu": self.mfu(window_tokens, window),
                        "eta_s": per_step * (total_steps - done),
                        "lr": self.scheduler.get_last_lr()[0],
                    }
                )
                window_losses, window_start, window_pairs, window_tokens = [], now, 0, 0
        seconds = time.perf_counter() - started
        return {
            "train_seconds": seconds,
            "train_cpu_seconds": time.process_time() - cpu_started,  # all threads of this process
            "train_pairs_per_s": pairs_done / seconds if seconds > 0 else None,
            "train_tokens_per_s": tokens_done / seconds if seconds > 0 else None,
            "train_mfu": self.mfu(tokens_done, seconds),  # None where the device's peak is unknown
            "train_flops_per_token": self.flops_per_token,
            "train_peak_flops": self.peak,
            "train_tokens": tokens_done,  # real tokens (a shared prompt counted once), all ranks
            "train_padded_tokens": ddp.sum_across_ranks(ctx, self.computed_tokens),  # padding included
            "train_sequences": ddp.sum_across_ranks(ctx, self.sequences),  # scored sequences, all ranks
            "train_losses": losses,  # mean over all ranks, one per optimizer step this process ran
            # Mean over the last tenth of the steps this process ran (at least one).
            "train_loss_final": statistics.fmean(losses[-max(1, len(losses) // 10) :]) if losses else None,
        }


def _write_json_atomic(path: Path, value) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(value, handle, indent=1)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _save_model(
    model, tokenizer, config: TrainConfig, model_dir: Path, metrics: dict, state_dict=None
) -> None:
    """Save the model with its tokenizer in Hugging Face format, replacing model_dir atomically.

    `model` is the transformers model, or peft's wrapper for LoRA: merged into the base weights for
    `lora-merged`, saved as adapters only (with the base model's path) for `lora-adapters`. `state_dict`: the
    full weights, where the model holds only a shard of them (FSDP).
    """
    tmp = model_dir.with_name(f".{model_dir.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    if config.mode == "lora-merged":
        model = model.merge_and_unload()
    if state_dict is not None:
        model.save_pretrained(tmp, state_dict=state_dict)
    else:
        model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    meta = {
        "rendering": RENDERING,
        "objective": config.objective,
        "score": "cost" if config.objective == "cost" else "reward",
        "max_length": config.max_length,
        "mode": config.mode,
        "adapters_of": config.base_model if config.mode == "lora-adapters" else None,
        "config": asdict(config),
    }
    (tmp / MODEL_META_FILE).write_text(json.dumps(meta, indent=1))
    (tmp / "metrics.json").write_text(json.dumps(metrics, indent=1))
    for child in tmp.iterdir():
        if child.is_file():
            with open(child, "rb") as handle:
                os.fsync(handle.fileno())
    checkpoints.fsync_dir(tmp)
    if model_dir.exists():
        old = model_dir.with_name(f".{model_dir.name}.old-{os.getpid()}")
        os.replace(model_dir, old)
        os.replace(tmp, model_dir)
        shutil.rmtree(old)
    else:
        os.replace(tmp, model_dir)
    checkpoints.fsync_dir(model_dir.parent)


# --- command line ---------------------------------------------------------------------------------------------


def run_spec(spec: dict) -> int:
    """Run one training spec (see training.md); returns the process exit status."""
    config = TrainConfig.from_dict(spec["config"])
    output_dir = Path(spec["output_dir"])
    output_dir.mkdir(parents=True, exist_ok=True)
    progress_path = Path(spec.get("progress_path") or output_dir / "progress.jsonl")
    result_path = Path(spec.get("result_path") or output_dir / "result.json")
    stop_path = Path(spec["stop_path"]) if spec.get("stop_path") else None
    pairs = read_pairs_jsonl(spec["pairs_path"])
    eval_pairs = read_pairs_jsonl(spec["eval_pairs_path"]) if spec.get("eval_pairs_path") else None
    is_main = int(os.environ.get("RANK", "0")) == 0

    def emit(event: str, values: dict) -> None:
        if is_main:
            with open(progress_path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps({"event": event, "time": time.time(), **values}) + "\n")

    emit("start", {"pid": os.getpid(), "world_size": int(os.environ.get("WORLD_SIZE", "1"))})
    try:
        result = train(
            pairs,
            config,
            output_dir=output_dir,
            on_progress=lambda values: emit("progress", values),
            should_stop=(lambda: stop_path.exists()) if stop_path else None,
            eval_pairs=eval_pairs,
        )
    except Cancelled as stop:
        emit("cancelled", {"step": stop.step, "total_steps": stop.total_steps})
        if is_main:
            _write_json_atomic(result_path, {"status": "cancelled", "step": stop.step})
        return 3
    except Exception as error:
        emit("failed", {"error": f"{type(error).__name__}: {error}"})
        if is_main:
            _write_json_atomic(result_path, {"status": "failed", "error": f"{type(error).__name__}: {error}"})
        raise
    if is_main:
        summary = {
            "status": "completed",
            "metrics": result.metrics,
            "model_dir": result.model_dir,
            "resumed_from_step": result.resumed_from_step,
        }
        emit("done", {"metrics": result.metrics, "resumed_from_step": result.resumed_from_step})
        _write_json_atomic(result_path, summary)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train a reward model from a spec JSON (see training.md).")
    parser.add_argument("--spec", required=True, help="path of the spec JSON")
    args = parser.parse_args(argv)
    if sys.platform.startswith("linux"):
        procs.set_parent_death_signal(os.getppid())  # die with torchrun or with whatever launched us
    spec = json.loads(Path(args.spec).read_text())
    return run_spec(spec)


if __name__ == "__main__":
    sys.exit(main())
