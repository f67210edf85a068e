"""The training loop: config -> task -> model -> optimiser -> run directory.

The run directory and its files are ``train.rundir``'s (``RunDir``); the summary written last,
which marks a finished run, is a ``train.summary.Summary``.

Reproducibility: the batch drawn at step s is a function of (seed, s) alone, and checkpoints
hold the model, optimiser, RNG and early-stopping state, so a run resumed from any checkpoint
ends with the same numbers as an uninterrupted one (same machine and thread count).

One file (past 400 lines) because the run's state (``_Run``) and the pieces it alone drives
(batch order, signals, RNG states, the step, early stopping) read top to bottom as one procedure.
"""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import threading
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from globalconv.config import RunConfig
from globalconv.core.errors import ConfigError, DivergedError
from globalconv.models import build_model
from globalconv.tasks import IGNORE_INDEX, TaskSpec
from globalconv.train import checkpoint, distributed, lock, matching, records
from globalconv.train.checkpoint import CheckpointError
from globalconv.train.data import BatchOrder, task_data
from globalconv.train.optim import build_optimizer, describe_groups, lr_factor, set_lr
from globalconv.train.rundir import RunDir
from globalconv.train.scoring import autocast, check_device, evaluate, forward_scored
from globalconv.train.summary import SCHEMA_VERSION, Summary

# Config keys that may change when a run is resumed: they do not change what is computed.
RESUMABLE_KEYS = {
    "name",
    "train.device",
    "train.threads",
    "train.tensorboard",
    "train.eval_batch_size",
    "train.checkpoint_every",
    "train.log_every",
    "train.compile",
    "train.compile_backend",
}


class TrainingInterrupted(KeyboardInterrupt):
    """Raised after SIGINT/SIGTERM once the checkpoint is saved; the CLI exits with 130."""


class _StopOnSignal:
    """SIGINT/SIGTERM ask the loop to save and stop at the next step; a second SIGINT aborts."""

    def __init__(self) -> None:
        self.requested: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


@contextmanager
def _threads(n: int | None):
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in data.items():
        if isinstance(value, dict) and value and key not in ("params", "mixer_options"):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def config_differences(
    saved: dict[str, Any], current: dict[str, Any], where: str = "in the checkpoint"
) -> list[str]:
    """Keys (dotted) whose values differ and that matter for the computation."""
    a, b = _flatten(saved), _flatten(current)
    return [
        f"{key}={a.get(key)!r} {where}, {b.get(key)!r} now"
        for key in sorted(set(a) | set(b))
        if key not in RESUMABLE_KEYS and a.get(key) != b.get(key)
    ]


def _rng_state(device: str) -> dict[str, torch.Tensor]:
    state = {"cpu": torch.get_rng_state()}
    if device.startswith("cuda"):
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, torch.Tensor], device: str) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and device.startswith("cuda"):
        torch.cuda.set_rng_state(state["cuda"], device)


def train(
    cfg: RunConfig,
    run_dir: str | Path,
    *,
    progress: bool = True,
    resume: bool = False,
    overwrite: bool = False,
) -> Summary:
    """Train one model as configured; write the run directory; return the summary.

    resume: continue from ``run_dir``'s checkpoint (a finished run returns its summary); the
    config must match the checkpoint's except for keys in ``RESUMABLE_KEYS``.
    overwrite: replace a run already in ``run_dir``. Without either, an existing run is an error.
    """
    run_dir = Path(run_dir)
    check_device(cfg.train.device)
    if cfg.train.tensorboard:
        records.tensorboard_writer_class()  # fail before training, not after
    # one writer per run directory: rank 0 holds its lock (the other ranks write nothing)
    with lock.locked(run_dir, enabled=os.environ.get("RANK", "0") == "0"):
        return _train(cfg, run_dir, progress=progress, resume=resume, overwrite=overwrite)


def _train(
    cfg: RunConfig, run_dir: Path, *, progress: bool, resume: bool, overwrite: bool
) -> Summary:
    run = RunDir(run_dir)
    ckpt_path = run.checkpoint_path
    # a damaged summary: an error naming it
    finished = run.read_summary() if run.finished and not overwrite else None
    if resume:
        if finished is not None:
            return finished
        if not ckpt_path.is_file():
            raise CheckpointError(
                f"nothing to resume in {run_dir}: it has no {RunDir.CHECKPOINT}; "
                "run without --resume to start it"
            )
    elif (finished is not None or ckpt_path.is_file()) and not overwrite:
        raise ConfigError(
            f"{run_dir} already holds a run; pass --resume to continue it, "
            "--overwrite to replace it, or choose another --out"
        )
    dist, device = distributed.setup(cfg.train.device)
    try:
        with _threads(cfg.train.threads):
            return _Run(cfg, run_dir, dist, device, progress, resume, overwrite).run()
    finally:
        dist.close()


class _Run:
    def __init__(self, cfg, run_dir, dist, device, progress, resume, overwrite) -> None:
        self.dist: distributed.Dist = dist
        self.device: str = device
        self.run_dir: Path = run_dir
        self.files = RunDir(run_dir)
        self.progress = progress
        tc = cfg.train
        self.task, self.splits, self.valid_source = task_data(cfg)
        self.spec: TaskSpec = self.task.spec
        spec = self.spec
        self.requested = cfg.model_dump(mode="json")  # before matching resizes it
        self.cfg, self.match = matching.match(cfg, spec)
        if tc.batch_size % (dist.world_size * tc.grad_accum):
            raise ConfigError(
                f"train.batch_size={tc.batch_size} must be divisible by processes x grad_accum "
                f"= {dist.world_size} x {tc.grad_accum}"
            )
        if tc.eval_every and "valid" not in self.splits:
            raise ConfigError(
                f"train.eval_every needs a validation split, and task {cfg.task.name!r} has none "
                "with these parameters (carve one from training with task.valid_fraction=0.1) "
                "or set train.eval_every=0"
            )
        if tc.early_stopping.metric == "bits_per_token" and spec.metric != "bits_per_token":
            raise ConfigError(
                f"train.early_stopping.metric=bits_per_token, but task {cfg.task.name!r} is "
                "scored by accuracy; use loss or accuracy"
            )
        self.resolved = self.cfg.model_dump(mode="json")

        meta, state = None, None
        if resume:
            meta, state = checkpoint.load(self.files.checkpoint_path)
            differences = config_differences(meta["config"], self.resolved)
            if differences:
                raise CheckpointError(
                    f"checkpoint in {run_dir} belongs to a different config: "
                    + "; ".join(differences)
                    + f" (resume with the run's {RunDir.CONFIG}, or start a new run)"
                )
            if meta["world_size"] != dist.world_size:
                raise CheckpointError(
                    f"checkpoint in {run_dir} was written by {meta['world_size']} process(es); "
                    f"resume it with the same number (now {dist.world_size})"
                )
        elif overwrite and dist.is_main:
            self.files.remove_results()
        dist.barrier()

        torch.manual_seed(tc.seed)  # the same initial weights in every process
        self.model: nn.Module = build_model(self.cfg.model, spec).to(device)
        self.optimizer = build_optimizer(self.model, tc)
        self.step = 0
        self.tokens = 0
        self.seconds = 0.0
        self.best: dict[str, Any] = {"value": None, "step": None, "bad": 0}
        self.best_state: dict[str, torch.Tensor] = {}
        self.done = False
        self.last_loss: float | None = None
        if state is not None:
            try:
                self.model.load_state_dict(state["model"])
                self.optimizer.load_state_dict(state["optimizer"])
            except (RuntimeError, ValueError, KeyError) as err:
                first = str(err).strip().splitlines()[0]
                raise CheckpointError(
                    f"checkpoint in {run_dir} does not fit this model: {first}"
                ) from None
            self.step, self.tokens, self.seconds = state["step"], state["tokens"], state["seconds"]
            self.best, self.best_state, self.done = (
                state["best"],
                state["best_state"],
                state["done"],
            )
            self.last_loss = state["last_loss"]
            _set_rng_state(state["rng"][dist.rank], device)
        else:
            # dropout streams: rank 0 continues like a single process, other ranks differ
            torch.manual_seed(tc.seed + 104_729 * (dist.rank + 1))
        self.resumed_from = meta["step"] if meta else None

        train_model: nn.Module = self.model
        self.ddp: nn.parallel.DistributedDataParallel | None = None
        if dist.active:
            ids = [device_index(device)] if device.startswith("cuda") else None
            self.ddp = train_model = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        if tc.compile:
            train_model = torch.compile(train_model, backend=tc.compile_backend)
        self.train_model = train_model
        L = spec.max_len
        self.flops_per_token = self.model.flops(L) / L if hasattr(self.model, "flops") else None
        self.order = BatchOrder(len(self.splits["train"]), tc.batch_size, tc.seed)

    # -- files (rank 0 only) ----------------------------------------------------------------

    def save_checkpoint(self) -> None:
        rng = self.dist.all_gather(_rng_state(self.device))
        if not self.dist.is_main:
            self.dist.barrier()
            return
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "tokens": self.tokens,
            "seconds": self.seconds,
            "best": self.best,
            "best_state": self.best_state,
            "done": self.done,
            "last_loss": self.last_loss,
            "rng": rng,
        }
        meta = {
            "step": self.step,
            "steps": self.cfg.train.steps,
            "done": self.done,
            "world_size": self.dist.world_size,
            "config": self.resolved,
            "time": time.time(),
        }
        checkpoint.save(self.files.checkpoint_path, state, meta)
        self.dist.barrier()

    # -- the loop ------------------------------------------------------------------------------

    def train_step(self, step: int, stop: _StopOnSignal) -> tuple[dict[str, float], bool]:
        tc, dist = self.cfg.train, self.dist
        factor = lr_factor(step, tc)
        set_lr(self.optimizer, factor)
        self.optimizer.zero_grad(set_to_none=True)
        train_split = self.splits["train"]
        batch_index = self.order.indices(step)
        # every process draws the same global batch, so each knows how many targets it scores;
        # DDP averages gradients over processes, so this scale makes them the batch mean's
        batch_scored = int((train_split.targets[batch_index] != IGNORE_INDEX).sum())
        scale = dist.world_size / max(batch_scored, 1)
        micro_batches = dist.shard(batch_index).chunk(tc.grad_accum)
        loss_sum, tokens = 0.0, 0
        for i, index in enumerate(micro_batches):
            model_inputs, targets = train_split.batch(index)
            last = i == len(micro_batches) - 1
            # gradients are averaged over processes once, after the last micro-batch
            with self.ddp.no_sync() if self.ddp is not None and not last else nullcontext():
                with autocast(self.device, tc.precision):
                    logits, flat = forward_scored(
                        self.train_model, model_inputs, targets, self.device
                    )
                loss = F.cross_entropy(
                    logits.float(), flat, ignore_index=IGNORE_INDEX, reduction="sum"
                )
                (loss * scale).backward()
            loss_sum += float(loss.detach())
            inputs = model_inputs["inputs"]
            tokens += int(inputs.shape[0] * inputs.shape[1])
        local = [loss_sum, tokens, float(stop.requested is not None)]
        totals = dist.all_sum(torch.tensor(local, dtype=torch.float64, device=self.device))
        loss_sum, tokens, stops = totals.tolist()
        scored = float(batch_scored)
        grad_norm = None
        if tc.grad_clip is not None:
            grad_norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), tc.grad_clip))
        self.optimizer.step()
        self.tokens += int(tokens)
        record = {"loss": loss_sum / max(scored, 1.0), "lr": tc.lr * factor, "tokens": tokens}
        if grad_norm is not None:
            record["grad_norm"] = grad_norm
        return record, stops > 0

    def validate(self) -> bool:
        """Evaluate on the validation split, log it, update early stopping; True: stop now."""
        tc = self.cfg.train
        metrics = evaluate(
            self.model,
            self.splits["valid"],
            self.spec,
            tc.eval_batch_size,
            self.device,
            dist=self.dist,
            precision=tc.precision,
        )
        self.log.write({"step": self.step, **{f"valid_{k}": v for k, v in metrics.items()}})
        es = tc.early_stopping
        value, best = metrics[es.metric], self.best["value"]
        maximise = es.metric == "accuracy"
        improved = best is None or (
            value > best + es.min_delta if maximise else value < best - es.min_delta
        )
        if improved:
            self.best = {"value": value, "step": self.step, "bad": 0}
            if es.patience:
                self.best_state = {
                    k: v.detach().clone() for k, v in self.model.state_dict().items()
                }
        else:
            self.best["bad"] += 1
        return bool(es.patience) and self.best["bad"] >= es.patience

    def run(self) -> Summary:
        tc, dist, files = self.cfg.train, self.dist, self.files
        if dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            files.write_config(self.resolved)
            files.write_request(self.requested)
            env = records.environment(self.device, dist.world_size)
            env["resumed_from_step"] = self.resumed_from
            files.write_env(env)
        self.log = records.MetricLog(
            files.metrics_path,
            enabled=dist.is_main,
            resume_step=self.resumed_from,
            tensorboard=files.tensorboard_path if tc.tensorboard else None,
        )
        log_every = tc.log_every or max(1, tc.steps // 200)
        bar = tqdm(
            total=tc.steps,
            initial=self.step,
            desc=f"{self.cfg.model.mixer} on {self.cfg.task.name}",
            disable=not (self.progress and dist.is_main),
        )
        try:
            with _StopOnSignal() as stop:
                session_start, mark, mark_tokens = time.perf_counter(), time.perf_counter(), 0
                seconds_before = self.seconds
                while not self.done and self.step < tc.steps:
                    record, stopping = self.train_step(self.step, stop)
                    self.step += 1
                    self.last_loss = record["loss"]
                    self.seconds = seconds_before + time.perf_counter() - session_start
                    mark_tokens += record.pop("tokens")
                    bar.update(1)
                    if self.step % log_every == 0 or self.step == tc.steps:
                        now = time.perf_counter()
                        record["tokens_per_s"] = mark_tokens / max(now - mark, 1e-9)
                        mark, mark_tokens = now, 0
                        self.log.write({"step": self.step, **record})
                        bar.set_postfix(
                            loss=f"{record['loss']:.3f}", tok_s=f"{record['tokens_per_s']:.0f}"
                        )
                    if not math.isfinite(record["loss"]):
                        raise DivergedError(
                            f"training loss is {record['loss']} at step {self.step}; "
                            "lower train.lr or set train.grad_clip"
                        )
                    if tc.eval_every and self.step % tc.eval_every == 0:
                        self.done = self.validate()
                    if stopping:
                        self.save_checkpoint()
                        raise TrainingInterrupted(
                            f"stopped by {stop.requested or 'a signal'} at step {self.step}; "
                            "checkpoint saved: resume with "
                            f"globalconv train --resume {self.run_dir}"
                        )
                    every = tc.checkpoint_every
                    if every and self.step % every == 0 and self.step < tc.steps and not self.done:
                        self.save_checkpoint()
        finally:
            bar.close()
        stopped_early = self.done and self.step < tc.steps
        self.done = True
        self.save_checkpoint()
        return self.finish(stopped_early)

    def finish(self, stopped_early: bool) -> Summary:
        tc, spec = self.cfg.train, self.spec
        if self.best_state:  # early stopping: report the weights of the best validation score
            self.model.load_state_dict(self.best_state)
        results = {
            name: evaluate(
                self.model,
                split,
                spec,
                tc.eval_batch_size,
                self.device,
                dist=self.dist,
                precision=tc.precision,
            )
            for name, split in self.splits.items()
            if name != "train"
        }
        L = spec.max_len
        summary = Summary(
            schema_version=SCHEMA_VERSION,
            name=self.cfg.name or self.run_dir.name,
            task=self.cfg.task.name,
            task_info=getattr(self.task, "info", None),  # what the task states about its data
            mixer=self.cfg.model.mixer,
            metric=spec.metric,
            params=sum(p.numel() for p in self.model.parameters()),
            flops_per_token=self.flops_per_token,
            seq_len=L,
            d_model=self.cfg.model.d_model,
            n_layers=self.cfg.model.n_layers,
            steps=tc.steps,
            steps_done=self.step,
            stopped_early=stopped_early,
            best_valid_step=self.best["step"],
            **{f"best_valid_{tc.early_stopping.metric}": self.best["value"]},
            weights_from_step=self.best["step"] if self.best_state else self.step,
            seed=tc.seed,
            batch_size=tc.batch_size,
            precision=tc.precision,
            device=self.device,
            world_size=self.dist.world_size,
            train_seconds=self.seconds,
            train_tokens=self.tokens,  # the budget in tokens seen (padding included)
            train_tokens_per_s=self.tokens / max(self.seconds, 1e-9),
            splits={name: len(split) for name, split in self.splits.items()},
            valid_source=self.valid_source,
            baseline=dataclasses.asdict(self.task.baseline(self.splits)),
            final_train_loss=self.last_loss,
            param_groups=describe_groups(self.optimizer),
            match=self.match,
            resumed_from_step=self.resumed_from,
            **{f"{name}_{key}": value for name, m in results.items() for key, value in m.items()},
        )
        if self.dist.is_main:
            self.files.write_weights(self.model.state_dict(), summary.weights_from_step)
            self.files.write_summary(summary)
        self.log.close()
        return summary


def device_index(device: str) -> int:
    return torch.device(device).index or 0


__all__ = ["RESUMABLE_KEYS", "TrainingInterrupted", "config_differences", "train"]
