"""How a run trains its model: the names a run's config may give. Imports nothing (the web side reads them).

- `full`: every weight trains; one process, or DDP (one replica per process) under torchrun.
- `lora-merged`: LoRA adapters (peft) on every linear layer, the score head trained whole; the adapters are
  merged into the base weights when the model is saved, so the result is a plain transformers model.
- `lora-adapters`: as `lora-merged`, but the adapters are saved on their own, next to a reference to the
  base model (loaded with peft).
- `fsdp`: every weight trains, sharded across processes with FSDP2 (`fully_shard`): parameters, gradients
  and optimizer state are split, so a model that does not fit whole with its optimizer state on one device
  trains. Saved as a plain transformers model.
"""

MODES = ("full", "lora-merged", "lora-adapters", "fsdp")
LORA_MODES = ("lora-merged", "lora-adapters")
MODE_LABELS = {
    "full": "Full fine-tuning (one process, or DDP on several GPUs)",
    "lora-merged": "LoRA, adapters merged into the saved model",
    "lora-adapters": "LoRA, adapters saved beside the base model (load with peft)",
    "fsdp": "Full fine-tuning sharded with FSDP (models too big for one device)",
}
