"""Where the runs of a sweep or a comparison train: in this process or in worker processes.

An executor is a context manager with ``submit(cfg, run_dir, state) -> Future`` (``state`` as
``sweep.reuse`` gives it: "new", "resume" or "rerun"; the future holds the run's summary) and
``slots``, the runs worth keeping in flight at once. ``make`` picks one:

- ``Inline`` (``jobs=1``): each run trains at submission, in this process, with progress bars;
- ``Pool`` (``jobs > 1``): spawned worker processes, each run on cpu_count/jobs torch threads.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from globalconv.config import RunConfig


class Inline:
    """Runs a job at submission, in this process (jobs=1: progress bars, no start-up cost)."""

    slots = 1

    def __init__(self, progress: bool) -> None:
        self.progress = progress

    def submit(self, cfg: RunConfig, run_dir: Path, state: str) -> Future:
        from globalconv.train.loop import train

        future: Future = Future()
        resume, overwrite = state == "resume", state == "rerun"
        try:
            future.set_result(
                train(cfg, run_dir, progress=self.progress, resume=resume, overwrite=overwrite)
            )
        except Exception as err:  # noqa: BLE001  (reported as the run's failure)
            future.set_exception(err)
        return future

    def __enter__(self) -> Inline:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass


class Pool:
    """``jobs`` worker processes, each run on cpu_count/jobs torch threads."""

    def __init__(self, jobs: int) -> None:
        self.slots = jobs
        self.threads = max(1, (os.cpu_count() or 1) // jobs)  # the cores shared, not oversubscribed
        self.workers = worker_pool(jobs)  # stopped with this process, never orphaned

    def submit(self, cfg: RunConfig, run_dir: Path, state: str) -> Future:
        dumped = cfg.model_dump(mode="json")
        resume, overwrite = state == "resume", state == "rerun"
        return self.pool.submit(train_one, dumped, str(run_dir), resume, self.threads, overwrite)

    def __enter__(self) -> Pool:
        self.pool = self.workers.__enter__()
        return self

    def __exit__(self, *exc: Any) -> bool | None:
        return self.workers.__exit__(*exc)


def make(*, jobs: int, progress: bool) -> Inline | Pool:
    """The executor for ``jobs`` runs in parallel."""
    return Inline(progress) if jobs == 1 else Pool(jobs)


def train_one(
    cfg_json: dict[str, Any],
    run_dir: str,
    resume: bool,
    threads: int | None,
    overwrite: bool = False,
):
    """One run in a worker process: the config travels as JSON, the summary comes back."""
    import torch

    from globalconv.train.loop import train

    if threads is not None:
        torch.set_num_threads(threads)
    cfg = RunConfig.model_validate(cfg_json)
    return train(cfg, run_dir, progress=False, resume=resume, overwrite=overwrite)


@contextmanager
def worker_pool(jobs: int) -> Iterator[ProcessPoolExecutor]:
    """``jobs`` spawned worker processes that never outlive this one. Here SIGTERM interrupts
    like Ctrl-C; on an interrupt or error the workers still running get SIGTERM (each saves its
    checkpoint, so its run resumes later) and, past a grace period, SIGKILL. A worker also gets
    SIGTERM if this process dies without a word (SIGKILL; Linux)."""
    pool = ProcessPoolExecutor(
        max_workers=jobs,
        mp_context=get_context("spawn"),
        initializer=_die_with_parent,
        initargs=(os.getpid(),),
    )
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if main else None
    try:
        yield pool
        pool.shutdown(wait=True)
    except BaseException:
        _stop_workers(pool)
        raise
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"stopped by {signal.Signals(signum).name}")


def _stop_workers(pool: ProcessPoolExecutor, grace: float = 60.0) -> None:
    workers = list((pool._processes or {}).values())  # noqa: SLF001  (no public handle)
    for worker in workers:
        if worker.is_alive():
            worker.terminate()  # SIGTERM: the run saves its checkpoint and stops
    pool.shutdown(wait=False, cancel_futures=True)
    deadline = time.monotonic() + grace
    for worker in workers:
        worker.join(timeout=max(0.0, deadline - time.monotonic()))
        if worker.is_alive():
            worker.kill()


def _die_with_parent(parent: int) -> None:
    """Worker start-up: SIGTERM to this worker when the parent dies (Linux prctl)."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except OSError:
            pass
    if os.getppid() != parent:  # the parent died before the line above took effect
        os.kill(os.getpid(), signal.SIGTERM)


__all__ = ["Inline", "Pool", "make", "train_one", "worker_pool"]
