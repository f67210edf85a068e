"""Where the runs of a sweep or a comparison train: here, in worker processes, or on Ray.

An executor is a context manager with ``submit(cfg, run_dir, state) -> Future`` (``state`` as
``sweep.reuse`` gives it: "new", "resume" or "rerun"; the future holds the run's summary) and
``slots``, the runs worth keeping in flight at once. ``make`` picks one:

- ``Inline`` (``jobs=1``): each run trains at submission, in this process, with progress bars;
- ``Pool`` (``jobs > 1``): spawned worker processes, each run on cpu_count/jobs torch threads;
- ``RayCluster`` (``executor="ray"``, ``pip install 'globalconv[ray]'``): one Ray task per run, on
  an existing cluster or a local Ray instance.

Every executor writes the same run directories, so a comparison stopped under one can be resumed
under another.
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

from globalconv.config import ConfigError, RunConfig

EXECUTORS = ("local", "ray")


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


class RayCluster:
    """One Ray task per run: on the cluster at ``address`` (or ``RAY_ADDRESS``), else on a local
    Ray instance started here and stopped at the end; a Ray session the caller already opened is
    used and left open. A task asks for ``train.threads`` CPUs (1 when unset, and it trains on
    that many torch threads) and, for a CUDA device, one GPU. On a cluster every node needs
    globalconv installed and the run directories at the same path on a shared filesystem.

    SIGTERM here interrupts like Ctrl-C; on an interrupt or error the tasks still running are
    cancelled (each saves its checkpoint, so its run resumes later) and, past a grace period,
    killed. A task is never retried by Ray: a failed run is reported, and a rerun resumes it.
    """

    def __init__(self, address: str | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise ConfigError("Ray is not installed: pip install 'globalconv[ray]'") from None
        self.ray = ray
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self.opened = False
        self.refs: list[Any] = []

    def __enter__(self) -> RayCluster:
        ray = self.ray
        if not ray.is_initialized():
            # no worker output here: a run's failure comes back as its exception
            if self.address:
                try:
                    ray.init(address=self.address, log_to_driver=False)
                except ConnectionError as err:
                    raise ConfigError(
                        f"no Ray cluster at {self.address} ({err}); start it, or unset "
                        "--ray-address and RAY_ADDRESS for a local instance"
                    ) from None
            else:
                ray.init(include_dashboard=False, log_to_driver=False)
            self.opened = True
        resources = ray.cluster_resources()
        self.slots = max(1, int(resources.get("CPU", 1)))
        self.gpus = int(resources.get("GPU", 0))
        self.task = ray.remote(max_retries=0)(train_one)
        self.main = threading.current_thread() is threading.main_thread()
        self.previous = signal.signal(signal.SIGTERM, _interrupt) if self.main else None
        return self

    def submit(self, cfg: RunConfig, run_dir: Path, state: str) -> Future:
        threads = cfg.train.threads or 1
        device = cfg.train.device
        gpus = 1 if device.startswith("cuda") else 0
        if gpus and not self.gpus:
            raise ConfigError(f"train.device={device} but the Ray cluster has no GPU")
        if device.startswith("cuda:") and device != "cuda:0":
            raise ConfigError(f"train.device={device}: a Ray task sees its one GPU; use cuda")
        ref = self.task.options(num_cpus=threads, num_gpus=gpus).remote(
            cfg.model_dump(mode="json"),
            str(Path(run_dir).resolve()),  # a worker's working directory is not this one's
            state == "resume",
            threads,
            state == "rerun",
        )
        self.refs.append(ref)
        future: Future = Future()
        ref.future().add_done_callback(lambda done: self._settle(future, done))
        return future

    def _settle(self, future: Future, done: Future) -> None:
        try:
            future.set_result(done.result())
        except self.ray.exceptions.RayTaskError as err:
            # the run's own exception, reported as the pool reports it
            cause = err.cause
            future.set_exception(cause if isinstance(cause, Exception) else err)
        except BaseException as err:  # noqa: BLE001  (a lost worker or node: the run failed)
            future.set_exception(err)

    def __exit__(self, kind: Any, *exc: Any) -> None:
        try:
            if kind is not None:
                self._cancel()
        finally:
            if self.main:
                signal.signal(signal.SIGTERM, self.previous)
            if self.opened:
                self.ray.shutdown()  # a local instance stops; a cluster is only disconnected

    def _cancel(self, grace: float = 60.0) -> None:
        ray = self.ray
        if not self.refs:
            return
        _, pending = ray.wait(self.refs, num_returns=len(self.refs), timeout=0)
        for ref in pending:
            ray.cancel(ref)  # a running task is interrupted: it saves its checkpoint and stops
        if pending:
            _, late = ray.wait(pending, num_returns=len(pending), timeout=grace)
            for ref in late:
                ray.cancel(ref, force=True)


def make(
    executor: str = "local",
    *,
    jobs: int = 1,
    progress: bool = True,
    ray_address: str | None = None,
) -> Inline | Pool | RayCluster:
    """The executor of that name: "local" (``jobs`` runs in parallel) or "ray" (as many as the
    cluster's CPUs hold; ``jobs`` is not used)."""
    if executor == "ray":
        return RayCluster(ray_address)
    if executor != "local":
        raise ConfigError(f"unknown executor {executor!r}; available: {', '.join(EXECUTORS)}")
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


__all__ = [
    "EXECUTORS",
    "Inline",
    "Pool",
    "RayCluster",
    "make",
    "train_one",
    "worker_pool",
]
