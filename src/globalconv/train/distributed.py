"""Data-parallel training across processes: ``torchrun --nproc_per_node=N -m globalconv train``.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; ``setup`` then joins the process group (gloo on
CPU, nccl on CUDA, each process on ``cuda:LOCAL_RANK``). Every process draws the same global
batch of ``train.batch_size`` examples and takes its own contiguous slice, DDP averages the
gradients, and the trainer rescales them so the step equals the single-process step on the
whole batch. Only rank 0 writes files; logged losses and evaluation metrics are sums reduced
over all processes. Without torchrun everything here is a no-op (world size 1).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # this process started the group and ends it

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def all_sum(self, values: torch.Tensor) -> torch.Tensor:
        """Sum of ``values`` over processes (the tensor itself when alone)."""
        if self.active:
            dist.all_reduce(values, op=dist.ReduceOp.SUM)
        return values

    def all_gather(self, obj: Any) -> list[Any]:
        if not self.active:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def shard(self, index: torch.Tensor) -> torch.Tensor:
        """This process's contiguous slice of a global batch (sizes divide evenly)."""
        per = index.shape[0] // self.world_size
        return index[self.rank * per : (self.rank + 1) * per]

    def close(self) -> None:
        if self.owns_group and dist.is_initialized():
            # every process reaches the end before any tears the group down: gloo aborts a
            # process whose peer destroys the group under it ("terminate called without an
            # active exception")
            dist.barrier()
            dist.destroy_process_group()


def setup(device: str) -> tuple[Dist, str]:
    """Join the torchrun process group when launched by torchrun; returns (Dist, device)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist(), device
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.startswith("cuda"):
        device = f"cuda:{local}"
        torch.cuda.set_device(local)
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
    return Dist(rank, world, local, owns), device


__all__ = ["Dist", "setup"]
