"""The reward-model trainer: torch and transformers only, no Django (import-linter holds this).

It reads a snapshot's pairs from a JSONL file and writes checkpoints and a model folder; `rewardtrain.runner`
(Django side) prepares the file, starts it (in-process or under torchrun) and records the outcome.
"""
