"""Pairs, their text rendering, the split, tokenisation and length-grouped batches.

No torch model code here and no Django: plain values in, plain values (and tensors for a batch) out.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

ROLE_LABELS = {"system": "System", "user": "Human", "assistant": "Assistant"}


@dataclass(frozen=True)
class Pair:
    """One preference pair. For the cost objective `chosen` is the SAFER response and `rejected` the unsafer."""

    item_key: str  # pairs with the same item_key never straddle the split
    prompt: list[dict]  # chat messages [{"role": "user"|"assistant"|"system", "content": str}, ...]
    chosen: str
    rejected: str
    margin: float = 0.0  # human margin in [0, 1] (bt-margin)
    chosen_safe: bool | None = None  # per-response safety labels (the cost objective's sign term)
    rejected_safe: bool | None = None


def render(prompt: Sequence[dict], response: str) -> str:
    """The one text rendering used for training, evaluation and scoring.

    Turns become `Human: …`, `Assistant: …` or `System: …` joined by a blank line, the response last as an
    `Assistant:` turn — the HH-RLHF transcript shape without its leading blank line.
    """
    turns = []
    for message in prompt:
        label = ROLE_LABELS.get(message.get("role"))
        if label is None:
            raise ValueError(
                f"unknown chat role {message.get('role')!r}; expected one of {sorted(ROLE_LABELS)}"
            )
        turns.append(f"{label}: {message['content']}")
    turns.append(f"Assistant: {response}")
    return "\n\n".join(turns)


def _item_rank(item_key: str, seed: int) -> str:
    return hashlib.sha256(f"{seed}\x00{item_key}".encode()).hexdigest()


def split_by_item(pairs: Sequence[Pair], eval_fraction: float, seed: int) -> tuple[list[Pair], list[Pair]]:
    """Split pairs into (train, eval) by item so that no item_key is on both sides.

    Items are ordered by a hash of (seed, item_key) and the first round(eval_fraction × items) go to eval, so the
    split depends only on the set of item keys and the seed, not on the order of `pairs`. With a fraction > 0
    and at least two items, each side gets at least one item. Input order is kept within each side.
    """
    if not 0.0 <= eval_fraction < 1.0:
        raise ValueError(f"eval_fraction must be in [0, 1), got {eval_fraction}")
    keys = sorted({p.item_key for p in pairs}, key=lambda k: (_item_rank(k, seed), k))
    n_eval = round(eval_fraction * len(keys))
    if eval_fraction > 0 and len(keys) >= 2:
        n_eval = min(max(n_eval, 1), len(keys) - 1)
    eval_keys = set(keys[:n_eval])
    train = [p for p in pairs if p.item_key not in eval_keys]
    held_out = [p for p in pairs if p.item_key in eval_keys]
    return train, held_out


def pairs_fingerprint(pairs: Iterable[Pair]) -> str:
    digest = hashlib.sha256()
    for pair in pairs:
        digest.update(json.dumps(asdict(pair), sort_keys=True, ensure_ascii=False).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def read_pairs_jsonl(path: str | Path) -> list[Pair]:
    pairs = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                pairs.append(Pair(**json.loads(line)))
            except (TypeError, ValueError) as error:
                raise ValueError(f"{path}:{number}: not a pair: {error}")
    return pairs


def write_pairs_jsonl(pairs: Iterable[Pair], path: str | Path) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for pair in pairs:
            handle.write(json.dumps(asdict(pair), ensure_ascii=False) + "\n")


def prepare_tokenizer(tokenizer):
    """Left truncation (the response survives), right padding, and a pad token (eos when missing)."""
    tokenizer.truncation_side = "left"
    tokenizer.padding_side = "right"
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError("the tokenizer has neither a pad token nor an eos token to pad with")
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def encode(tokenizer, texts: Sequence[str], max_length: int) -> list[list[int]]:
    if not texts:
        return []
    return tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]


@dataclass(frozen=True)
class EncodedPairs:
    chosen: list[list[int]]
    rejected: list[list[int]]
    margins: list[float]
    chosen_safe: list[int]  # 1 safe, 0 unsafe, -1 unknown
    rejected_safe: list[int]

    def __len__(self) -> int:
        return len(self.chosen)

    def lengths(self) -> list[int]:
        return [max(len(c), len(r)) for c, r in zip(self.chosen, self.rejected, strict=True)]


def _safe_code(value: bool | None) -> int:
    return -1 if value is None else int(bool(value))


def encode_pairs(tokenizer, pairs: Sequence[Pair], max_length: int) -> EncodedPairs:
    return EncodedPairs(
        chosen=encode(tokenizer, [render(p.prompt, p.chosen) for p in pairs], max_length),
        rejected=encode(tokenizer, [render(p.prompt, p.rejected) for p in pairs], max_length),
        margins=[float(p.margin) for p in pairs],
        chosen_safe=[_safe_code(p.chosen_safe) for p in pairs],
        rejected_safe=[_safe_code(p.rejected_safe) for p in pairs],
    )


def length_grouped_batches(
    lengths: Sequence[int], batch_size: int, seed: int, epoch: int, megabatch: int = 8
) -> list[list[int]]:
    """Shuffle, sort by length within mega-batches of `megabatch` batches, cut into batches, shuffle the batches.

    Batches then hold pairs of similar length (little padding) while their order stays random. A deterministic
    function of (lengths, batch_size, seed, epoch): a resumed run finds the same order. `megabatch` 0 or 1
    turns grouping off (plain shuffled batches).
    """
    rng = random.Random(seed * 1_000_003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    span = batch_size * max(megabatch, 1)
    batches = []
    for start in range(0, len(order), span):
        chunk = order[start : start + span]
        if megabatch > 1:
            chunk.sort(key=lambda i: lengths[i], reverse=True)
        batches.extend(chunk[j : j + batch_size] for j in range(0, len(chunk), batch_size))
    if megabatch > 1:
        rng.shuffle(batches)
    return batches


def pad(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return ids, mask


def collate(data: EncodedPairs, indices: Sequence[int], pad_id: int) -> dict[str, torch.Tensor]:
    """Chosen rows first, then rejected rows, in one right-padded batch: one forward pass for both."""
    ids, mask = pad([data.chosen[i] for i in indices] + [data.rejected[i] for i in indices], pad_id)
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "margin": torch.tensor([data.margins[i] for i in indices], dtype=torch.float32),
        "safe": torch.tensor(
            [data.chosen_safe[i] for i in indices] + [data.rejected_safe[i] for i in indices],
            dtype=torch.long,
        ),
    }


def shared_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Tokens the two sequences share at the start, leaving each at least one token of its own."""
    limit = min(len(a), len(b)) - 1
    n = 0
    while n < limit and a[n] == b[n]:
        n += 1
    return n


def pair_token_counts(data: EncodedPairs, share_prompt: bool) -> list[int]:
    """Tokens each pair puts through the model: both sequences, the shared prefix once when it is shared."""
    return [
        len(c) + len(r) - (shared_prefix(c, r) if share_prompt else 0)
        for c, r in zip(data.chosen, data.rejected, strict=True)
    ]


def _last_non_pad(ids: Sequence[int], pad_id: int) -> int:
    """Where transformers' sequence-classification head reads a decoder's score: the rightmost non-pad token
    (so a tokenizer padding with its eos token, which it may also append, is read the same way as there)."""
    for position in range(len(ids) - 1, -1, -1):
        if ids[position] != pad_id:
            return position
    return 0


def _units(data: EncodedPairs, indices: Sequence[int], pad_id: int, share_prompt: bool) -> list[tuple]:
    """(ids, segment, prefix-of-segment, positions, [(score slot, local index), ...]) per unit; slot n is the
    chosen sequence of the batch's n-th pair, slot B + n its rejected one."""
    units = []
    batch = len(indices)
    for n, i in enumerate(indices):
        chosen, rejected = data.chosen[i], data.rejected[i]
        if not share_prompt:  # each sequence a unit of its own
            for slot, seq in ((n, chosen), (batch + n, rejected)):
                units.append((list(seq), [0] * len(seq), [0] * len(seq), list(range(len(seq))),
                              [(slot, _last_non_pad(seq, pad_id))]))  # fmt: skip
            continue
        shared = shared_prefix(chosen, rejected)
        c_tail, r_tail = chosen[shared:], rejected[shared:]
        ids = list(chosen[:shared]) + list(c_tail) + list(r_tail)
        segment = [0] * shared + [1] * len(c_tail) + [2] * len(r_tail)
        prefix = [0] * len(ids) if shared else segment  # both tails see segment 0, the shared prefix
        positions = list(range(len(chosen))) + list(range(shared, len(rejected)))
        # The rejected side's score sits inside the shared prefix only if its own tail is all pad.
        rejected_last = _last_non_pad(rejected, pad_id)
        rejected_end = rejected_last if rejected_last < shared else len(chosen) + rejected_last - shared
        units.append(
            (ids, segment, prefix, positions, [(n, _last_non_pad(chosen, pad_id)), (batch + n, rejected_end)])
        )
    return units


def _pack_units(
    units: list[tuple], n_slots: int, pad_id: int, pack: bool, pack_length: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[int]]:
    """Lay units in rows (see `collate_packed`): ids, positions, the [rows, 1, T, T] mask, and per score slot
    its flat index (row × T + column)."""
    rows: list[list[int]] = []
    if pack:
        # First fit, longest first, into rows as wide as the longest unit (so never wider than the padded
        # batch: attention under the dense mask costs no more) or `pack_length` when that is more.
        cap = max(pack_length, max(len(u[0]) for u in units))
        used: list[int] = []
        for n in sorted(range(len(units)), key=lambda n: -len(units[n][0])):
            size = len(units[n][0])
            row = next((r for r, taken in enumerate(used) if taken + size <= cap), None)
            if row is None:
                rows.append([n])
                used.append(size)
            else:
                rows[row].append(n)
                used[row] += size
    else:
        rows = [[n] for n in range(len(units))]
    width = max(sum(len(units[n][0]) for n in row) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    segment = torch.full((len(rows), width), -1, dtype=torch.long)
    prefix = torch.full((len(rows), width), -1, dtype=torch.long)
    score_at = [0] * n_slots
    for r, row in enumerate(rows):
        start = 0
        for n in row:
            unit_ids, unit_seg, unit_prefix, unit_pos, reads = units[n]
            end = start + len(unit_ids)
            ids[r, start:end] = torch.as_tensor(unit_ids, dtype=torch.long)
            positions[r, start:end] = torch.as_tensor(unit_pos, dtype=torch.long)
            base = 3 * n  # segment numbers unique within the batch
            segment[r, start:end] = torch.as_tensor(unit_seg, dtype=torch.long) + base
            prefix[r, start:end] = torch.as_tensor(unit_prefix, dtype=torch.long) + base
            for slot, local in reads:
                score_at[slot] = r * width + start + local
            start = end
    same = segment[:, None, :] == segment[:, :, None]  # [rows, query, key]
    sees_prefix = segment[:, None, :] == prefix[:, :, None]
    causal = torch.ones((width, width), dtype=torch.bool).tril()
    mask = (same | sees_prefix) & causal
    return ids, positions, mask[:, None], score_at


def collate_packed(
    data: EncodedPairs,
    indices: Sequence[int],
    pad_id: int,
    *,
    pack: bool,
    share_prompt: bool,
    pack_length: int = 0,
) -> dict[str, torch.Tensor]:
    """Rows of sequences with their own positions and a block mask: no pad token is attended to or scored.

    Units: each sequence on its own (positions from 0), or with `share_prompt` each pair as
    `prefix ++ chosen tail ++ rejected tail`, where the prefix is the token prefix both sequences share (the
    rendered prompt) and each tail continues the prefix's positions and sees the prefix but not the other
    tail. With `pack` the units are laid end to end, first fit longest first, in rows of at most
    `pack_length` tokens or the longest unit, whichever is more; without, each unit is a row. Rows are right-padded to the longest; pad
    positions attend only to pad positions, so no real token sees them.

    The mask is `attention_mask` [rows, 1, T, T] (True = may attend), causal within a row. `chosen_at` and
    `rejected_at` are flat indices (row × T + column) of each pair's last non-pad chosen and rejected token,
    the positions a decoder's score head reads. Causal decoders only: under this mask every scored position sees
    exactly the tokens it would see in its own padded row.
    """
    units = _units(data, indices, pad_id, share_prompt)
    ids, positions, mask, score_at = _pack_units(units, 2 * len(indices), pad_id, pack, pack_length)
    return {
        "input_ids": ids,
        "position_ids": positions,
        "attention_mask": mask,
        "chosen_at": torch.tensor(score_at[: len(indices)], dtype=torch.long),
        "rejected_at": torch.tensor(score_at[len(indices) :], dtype=torch.long),
        "margin": torch.tensor([data.margins[i] for i in indices], dtype=torch.float32),
        "safe": torch.tensor(
            [data.chosen_safe[i] for i in indices] + [data.rejected_safe[i] for i in indices],
            dtype=torch.long,
        ),
    }


# --- grouped batches: all pairs of one item (a ranking's K(K−1)/2 pairs) together, each response encoded once ---


def item_groups(pairs: Sequence[Pair]) -> list[list[int]]:
    """Indices of the pairs of each `item_key`, items in first-seen order, pairs in input order."""
    groups: dict[str, list[int]] = {}
    for i, pair in enumerate(pairs):
        groups.setdefault(pair.item_key, []).append(i)
    return list(groups.values())


def group_lengths(data: EncodedPairs, groups: Sequence[Sequence[int]]) -> list[int]:
    """The longest sequence of each group (what a grouped batch is padded to)."""
    lengths = data.lengths()
    return [max(lengths[i] for i in group) for group in groups]


def distinct_sequences(
    data: EncodedPairs, indices: Sequence[int]
) -> tuple[list[list[int]], list[int], list[int]]:
    """The distinct token sequences of the pairs `indices` (first-seen order) and, per pair, the position of its
    chosen and of its rejected sequence among them. A response shared by several pairs (a ranking's K responses
    in its K(K−1)/2 pairs, or one comparison judged by several annotators) is one sequence."""
    seen: dict[tuple[int, ...], int] = {}
    sequences: list[list[int]] = []
    chosen: list[int] = []
    rejected: list[int] = []
    for i in indices:
        for seq, out in ((data.chosen[i], chosen), (data.rejected[i], rejected)):
            key = tuple(seq)
            if key not in seen:
                seen[key] = len(sequences)
                sequences.append(list(seq))
            out.append(seen[key])
    return sequences, chosen, rejected


def collate_grouped(
    data: EncodedPairs, indices: Sequence[int], pad_id: int, *, pack: bool = False, pack_length: int = 0
) -> dict[str, torch.Tensor]:
    """One row (or, with `pack`, one packed segment) per DISTINCT sequence of the pairs `indices`; the model
    scores each once and `chosen_index` / `rejected_index` pick every pair's two scores from them, laid out
    [chosen..., rejected...] as `collate` lays them, so the loss is the ungrouped one."""
    sequences, chosen, rejected = distinct_sequences(data, indices)
    out: dict[str, torch.Tensor] = {}
    if pack:
        units = [
            (seq, [0] * len(seq), [0] * len(seq), list(range(len(seq))), [(n, _last_non_pad(seq, pad_id))])
            for n, seq in enumerate(sequences)
        ]
        ids, positions, mask, score_at = _pack_units(units, len(sequences), pad_id, True, pack_length)
        out.update(
            input_ids=ids,
            position_ids=positions,
            attention_mask=mask,
            chosen_at=torch.tensor(score_at, dtype=torch.long),  # every sequence's score, in order
            rejected_at=torch.zeros(0, dtype=torch.long),
        )
    else:
        out["input_ids"], out["attention_mask"] = pad(sequences, pad_id)
    out.update(
        chosen_index=torch.tensor(chosen, dtype=torch.long),
        rejected_index=torch.tensor(rejected, dtype=torch.long),
        margin=torch.tensor([data.margins[i] for i in indices], dtype=torch.float32),
        safe=torch.tensor(
            [data.chosen_safe[i] for i in indices] + [data.rejected_safe[i] for i in indices],
            dtype=torch.long,
        ),
    )
    return out
