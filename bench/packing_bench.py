"""Padding-free packing and prompt sharing against the padded baseline, on the same data, on CPU.

A small Llama-style decoder made from a config (random weights, the offline MiniLM tokenizer) trains on the same
HH harmless pairs (the demo slice), the same seed and order, four ways: padded (dynamic padding, length-grouped
batches), packed (all sequences of a micro-batch in one row, own positions, block mask: no pad token),
shared (chosen and rejected in one row sharing their common prompt prefix) and packed+shared. Rounds alternate
the variants so a busy machine hurts them alike. The same three again on random batches (no length grouping),
each compared with padded random batches in the same order. Printed per variant: pairs per second of wall time and per
CPU-second of the process (steadier on a shared machine; medians over rounds), tokens put through the model,
the speed-up over padded (CPU time), and the largest difference of its per-step loss from padded's.

    HF_HUB_OFFLINE=1 python bench/packing_bench.py [--pairs 192] [--rounds 2] [--hidden 256] [--layers 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import torch
from gpu_trainer import DATA, offline_minilm, save_llama  # bench/, next to this script (sets up sys.path)
from hh_pairs import load_hh, pick

from rewardtrain.trainer.training import TrainConfig, train

VARIANTS = {  # name: (options, the padded run it is compared with: same batches, same order)
    "padded": ({}, "padded"),
    "packed": ({"packing": True}, "padded"),
    "shared": ({"share_prompt": True}, "padded"),
    "packed+shared": ({"packing": True, "share_prompt": True}, "padded"),
    # Rows up to 2 × max_length: two sequences of similar length share a row (more attention per row).
    "packed, wide rows": ({"packing": True, "pack_length": "2x"}, "padded"),
    # Random batches (no length grouping, as TRL's RewardTrainer batches): where packing removes most padding.
    "random padded": ({"group_megabatches": 0}, "random padded"),
    "random packed": ({"group_megabatches": 0, "packing": True}, "random padded"),
    "random packed+shared": (
        {"group_megabatches": 0, "packing": True, "share_prompt": True},
        "random padded",
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=192)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    pairs, _ = load_hh(DATA)
    train_pairs, eval_pairs = pick(pairs, args.pairs, 16, seed=0)
    shape = dict(hidden_size=args.hidden, num_hidden_layers=args.layers, num_attention_heads=4,
                 num_key_value_heads=2, intermediate_size=args.hidden * 11 // 4, max_position_embeddings=1024)  # fmt: skip
    runs: dict[str, list[dict]] = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        base = save_llama(Path(tmp) / "base", shape, offline_minilm(), torch.device("cpu"))
        for round_ in range(args.rounds):
            for name, (options, _) in VARIANTS.items():
                if options.get("pack_length") == "2x":
                    options = {**options, "pack_length": 2 * args.max_length}
                config = TrainConfig(base_model=base, lr=1e-4, batch_size=args.batch_size, max_length=args.max_length,
                                     checkpoint_every=0, num_threads=args.threads, **options)  # fmt: skip
                out = Path(tmp) / f"{name}-{round_}"
                runs[name].append(train(train_pairs, config, output_dir=out, eval_pairs=eval_pairs).metrics)
    print(f"{args.pairs} HH pairs, max length {args.max_length}, batch {args.batch_size}, decoder hidden "
          f"{args.hidden} x {args.layers} layers ({runs['padded'][0]['parameters'] / 1e6:.1f} M matmul parameters), "
          f"{args.threads} threads, torch {torch.__version__}")  # fmt: skip

    def per_cpu_s(m: dict) -> float:
        return m["train_pairs"] / m["train_cpu_seconds"]

    print(f"{'variant':<21} {'pairs/s':>8} {'pairs/CPU-s':>11} {'speed-up':>8} {'tokens computed':>16} {'real':>7} {'of padded':>9} "
          f"{'max |Δ loss|':>13}")  # fmt: skip
    for name, (_, reference) in VARIANTS.items():
        metrics, baseline = runs[name], runs[reference]
        wall = statistics.median(m["train_pairs_per_s"] for m in metrics)
        rate = statistics.median(per_cpu_s(m) for m in metrics)
        base_rate = statistics.median(per_cpu_s(m) for m in baseline)
        computed = metrics[0]["train_padded_tokens"]
        losses = zip(metrics[0]["train_losses"], baseline[0]["train_losses"], strict=True)
        diff = max(abs(a - b) for a, b in losses)
        share = computed / baseline[0]["train_padded_tokens"]
        print(
            f"{name:<21} {wall:8.2f} {rate:11.2f} {rate / base_rate:7.2f}x {computed:16,d} "
            f"{metrics[0]['train_tokens']:7,d} {share:9.1%} {diff:13.2e}"
        )


if __name__ == "__main__":
    main()
