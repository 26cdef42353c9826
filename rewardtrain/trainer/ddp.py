"""Process-group setup for one process per GPU (NCCL) or per CPU slot (gloo), read from torchrun's environment."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    rank: int
    local_rank: int
    world_size: int
    local_world_size: int
    device: torch.device
    owns_group: bool  # we initialised the process group, so we tear it down

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def setup(device: str | None = None, *, group_of_one: bool = False) -> DistContext:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK), or run alone.

    `group_of_one`: alone, still make a one-process group (in memory, no port), for code that needs one (FSDP).
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world_size = int(os.environ.get("LOCAL_WORLD_SIZE", str(world_size)))
    use_cuda = torch.cuda.is_available() if device is None else device.startswith("cuda")
    if use_cuda:
        torch_device = torch.device("cuda", local_rank if world_size > 1 else torch.cuda.current_device())
        torch.cuda.set_device(torch_device)
    else:
        torch_device = torch.device("cpu")
    owns_group = False
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        owns_group = True
    elif world_size == 1 and group_of_one and not dist.is_initialized():
        dist.init_process_group(
            backend="nccl" if use_cuda else "gloo", store=dist.HashStore(), rank=0, world_size=1
        )
        owns_group = True
    if world_size > 1 and dist.get_world_size() != world_size:
        raise RuntimeError(f"WORLD_SIZE={world_size} but the process group has {dist.get_world_size()} ranks")
    return DistContext(rank, local_rank, world_size, local_world_size, torch_device, owns_group)


def teardown(ctx: DistContext) -> None:
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def broadcast_object(ctx: DistContext, value):
    """Rank 0's `value` on every rank."""
    if not ctx.distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def any_rank(ctx: DistContext, flag: bool) -> bool:
    """True on every rank when `flag` is true on any rank (a cheap collective, safe to call every step)."""
    if not ctx.distributed:
        return flag
    tensor = torch.tensor([1.0 if flag else 0.0], device=ctx.device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item())


def mean_across_ranks(ctx: DistContext, value: torch.Tensor) -> torch.Tensor:
    """The mean of a scalar tensor over all ranks (itself when alone)."""
    if not ctx.distributed:
        return value
    total = value.detach().clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total / ctx.world_size


def sum_across_ranks(ctx: DistContext, value: int) -> int:
    if not ctx.distributed:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return int(tensor.item())


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()
