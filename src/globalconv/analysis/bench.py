"""What every ``globalconv bench ...`` measurement shares: side-by-side timing, live-memory
tracking, and milliseconds and ratios as the tables print them.

Benchmarks are measurements, not tests: they print numbers and ratios, never assert on them.
Candidates are timed *interleaved* (each round runs every candidate once, after warm-up) and
summarised by medians, so a machine shared with other work slows them alike and the ratios
between them stay meaningful.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


def synchronize(device: torch.device | str) -> None:
    """Wait for queued GPU work, so wall-clock time covers it."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def time_interleaved(
    candidates: dict[str, Callable[[], Any]],
    *,
    repeats: int,
    warmup: int,
    device: torch.device | str = "cpu",
) -> dict[str, float]:
    """Median seconds per call of each candidate, timed in interleaved rounds after warm-up."""
    rounds = time_rounds(candidates, repeats=repeats, warmup=warmup, device=device)
    return {name: statistics.median(ts) for name, ts in rounds.items()}


def time_rounds(
    candidates: dict[str, Callable[[], Any]],
    *,
    repeats: int,
    warmup: int,
    device: torch.device | str = "cpu",
) -> dict[str, list[float]]:
    """Seconds of every timed call of each candidate, in interleaved rounds after warm-up."""
    for _ in range(warmup):
        for fn in candidates.values():
            fn()
    synchronize(device)
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(max(repeats, 1)):
        for name, fn in candidates.items():
            start = time.perf_counter()
            fn()
            synchronize(device)
            times[name].append(time.perf_counter() - start)
    return times


class LiveTensorBytes(TorchDispatchMode):
    """Peak bytes of tensor storage created while active: views, in-place results and tensors
    that existed before count for nothing; a storage counts as freed once nothing references it
    (noticed at the next operation)."""

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[StorageWeakRef, int] = {}
        self.existing: set[StorageWeakRef] = set()
        self.current = 0
        self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        for t in tree_flatten((args, kwargs))[0]:
            if isinstance(t, torch.Tensor):
                ref = StorageWeakRef(t.untyped_storage())
                if ref not in self.live:
                    self.existing.add(ref)
        out = func(*args, **(kwargs or {}))
        for ref in [r for r in self.live if r.expired()]:
            self.current -= self.live.pop(ref)
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                ref = StorageWeakRef(t.untyped_storage())
                if ref not in self.live and ref not in self.existing:
                    self.live[ref] = t.untyped_storage().nbytes()
                    self.current += self.live[ref]
        self.peak = max(self.peak, self.current)
        return out


def peak_bytes(fn: Callable[[], Any]) -> int:
    """Peak bytes of the tensors ``fn`` creates while it runs (outputs it keeps included)."""
    with LiveTensorBytes() as tracker:
        fn()
    return tracker.peak


def ms(seconds: float | None) -> str | None:
    return None if seconds is None else f"{1e3 * seconds:.2f}"


def ratio(a: float | None, b: float | None) -> str | None:
    return None if a is None or b is None or b == 0 else f"{a / b:.2f}"
