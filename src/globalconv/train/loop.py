"""The training loop: config -> task -> model -> optimiser -> run directory.

Top to bottom: ``train`` (the run directory's state, its lock, the processes); ``Progress``, how
far a run has come (with the model, optimiser and RNG states, what a checkpoint holds); ``_Run``,
built by checking the config against the task, reading the checkpoint when resuming, building or
restoring the model and optimiser and wrapping them for the step, then the step, validation with
early stopping, the loop and the summary; last, the small helpers only the loop uses. What a
batch scores and evaluation are ``train.scoring``'s, the task's splits and batch order
``train.data``'s, the run directory's files ``train.rundir``'s (``RunDir``); the summary written
last, which marks a finished run, is a ``train.summary.Summary``.

Reproducibility: the batch drawn at step s is a function of (seed, s) alone, and checkpoints
hold the model, optimiser, RNG and early-stopping state, so a run resumed from any checkpoint
ends with the same numbers as an uninterrupted one (same machine and thread count).

One file (past 400 lines, about 570) because ``_Run``'s state and the procedure that drives it
(build, step, validate, checkpoint, finish) read top to bottom as one.
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


@dataclasses.dataclass
class Progress:
    """How far a run has come. With the model, optimiser and RNG states, this is what a
    checkpoint holds: ``checkpoint_state`` writes it and ``restore`` reads it back."""

    step: int = 0
    tokens: int = 0  # seen in training, padding included
    seconds: float = 0.0  # spent training, over every session of the run
    # early stopping: the best validation value, its step, evaluations since without a better one
    best: dict[str, Any] = dataclasses.field(
        default_factory=lambda: {"value": None, "step": None, "bad": 0}
    )
    # the weights of the best step, kept when early stopping has patience
    best_state: dict[str, torch.Tensor] = dataclasses.field(default_factory=dict)
    done: bool = False  # nothing left to train: the steps are done or early stopping stopped
    last_loss: float | None = None

    def checkpoint_state(
        self, model: nn.Module, optimizer: torch.optim.Optimizer, rng: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """The state ``checkpoint.pt`` holds, keys in the order written since format 1: the
        model, the optimiser, these fields, and the RNG states of every process (by rank)."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            **fields,
            "rng": rng,
        }

    @classmethod
    def restore(
        cls,
        state: dict[str, Any],
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        dist: distributed.Dist,
        device: str,
        run_dir: Path,
    ) -> Progress:
        """Load a ``checkpoint_state`` into the model, the optimiser and this process's RNG;
        return the progress it records."""
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as err:
            first = str(err).strip().splitlines()[0]
            raise CheckpointError(
                f"checkpoint in {run_dir} does not fit this model: {first}"
            ) from None
        progress = cls(**{f.name: state[f.name] for f in dataclasses.fields(cls)})
        _set_rng_state(state["rng"][dist.rank], device)
        return progress


def _check_against_task(
    cfg: RunConfig, splits: dict[str, Any], spec: TaskSpec, world_size: int
) -> None:
    """The config's errors that only the task (or the number of processes) reveals."""
    tc = cfg.train
    if tc.batch_size % (world_size * tc.grad_accum):
        raise ConfigError(
            f"train.batch_size={tc.batch_size} must be divisible by processes x grad_accum "
            f"= {world_size} x {tc.grad_accum}"
        )
    if tc.eval_every and "valid" not in splits:
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


class _Run:
    """One run in this process: built ready to train by ``__init__`` (the config checked against
    the task, the checkpoint read when resuming, the model and optimiser built or restored and
    wrapped for the step), trained by ``run``, reported by ``finish``."""

    def __init__(self, cfg, run_dir, dist, device, show_bar, resume, overwrite) -> None:
        self.dist: distributed.Dist = dist
        self.device: str = device
        self.run_dir: Path = run_dir
        self.files = RunDir(run_dir)
        self.show_bar: bool = show_bar
        self.task, self.splits, self.valid_source = task_data(cfg)
        self.spec: TaskSpec = self.task.spec
        self.requested = cfg.model_dump(mode="json")  # before matching resizes it
        self.cfg, self.match = matching.match(cfg, self.spec)
        _check_against_task(self.cfg, self.splits, self.spec, dist.world_size)
        self.resolved = self.cfg.model_dump(mode="json")

        meta, state = self.read_checkpoint() if resume else (None, None)
        if not resume and overwrite and dist.is_main:
            self.files.remove_results()
        dist.barrier()
        self.resumed_from: int | None = meta["step"] if meta else None

        self.model, self.optimizer, self.progress = self.build(state)
        self.ddp, self.train_model = self.wrap()
        L = self.spec.max_len
        self.flops_per_token = self.model.flops(L) / L if hasattr(self.model, "flops") else None
        tc = self.cfg.train
        self.order = BatchOrder(len(self.splits["train"]), tc.batch_size, tc.seed)

    def read_checkpoint(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """(meta, state) of the run's checkpoint; refused if another config (past
        ``RESUMABLE_KEYS``) or another number of processes wrote it."""
        meta, state = checkpoint.load(self.files.checkpoint_path)
        differences = config_differences(meta["config"], self.resolved)
        if differences:
            raise CheckpointError(
                f"checkpoint in {self.run_dir} belongs to a different config: "
                + "; ".join(differences)
                + f" (resume with the run's {RunDir.CONFIG}, or start a new run)"
            )
        if meta["world_size"] != self.dist.world_size:
            raise CheckpointError(
                f"checkpoint in {self.run_dir} was written by {meta['world_size']} process(es); "
                f"resume it with the same number (now {self.dist.world_size})"
            )
        return meta, state

    def build(
        self, state: dict[str, Any] | None
    ) -> tuple[nn.Module, torch.optim.Optimizer, Progress]:
        """The model, the optimiser and the progress: fresh, or restored from ``state``.

        The random draws come in a fixed order so a run is reproducible: the seed, the initial
        weights, then a fresh run's dropout stream or a resumed run's saved RNG states.
        """
        tc = self.cfg.train
        torch.manual_seed(tc.seed)  # the same initial weights in every process
        model = build_model(self.cfg.model, self.spec).to(self.device)
        optimizer = build_optimizer(model, tc)
        if state is not None:
            restored = Progress.restore(
                state, model, optimizer, self.dist, self.device, self.run_dir
            )
            return model, optimizer, restored
        # dropout streams: rank 0 continues like a single process, other ranks differ
        torch.manual_seed(tc.seed + 104_729 * (self.dist.rank + 1))
        return model, optimizer, Progress()

    def wrap(self) -> tuple[nn.parallel.DistributedDataParallel | None, nn.Module]:
        """(DDP or None, the module the step runs): the model, in DistributedDataParallel under
        torchrun, compiled when ``train.compile`` asks."""
        tc = self.cfg.train
        train_model: nn.Module = self.model
        ddp = None
        if self.dist.active:
            ids = [device_index(self.device)] if self.device.startswith("cuda") else None
            ddp = train_model = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        if tc.compile:
            train_model = torch.compile(train_model, backend=tc.compile_backend)
        return ddp, train_model

    # -- files (rank 0 only) ----------------------------------------------------------------

    def save_checkpoint(self) -> None:
        rng = self.dist.all_gather(_rng_state(self.device))
        if not self.dist.is_main:
            self.dist.barrier()
            return
        state = self.progress.checkpoint_state(self.model, self.optimizer, rng)
        meta = {
            "step": self.progress.step,
            "steps": self.cfg.train.steps,
            "done": self.progress.done,
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
        self.progress.tokens += int(tokens)
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
        progress = self.progress
        self.log.write({"step": progress.step, **{f"valid_{k}": v for k, v in metrics.items()}})
        es = tc.early_stopping
        value, best = metrics[es.metric], progress.best["value"]
        maximise = es.metric == "accuracy"
        improved = best is None or (
            value > best + es.min_delta if maximise else value < best - es.min_delta
        )
        if improved:
            progress.best = {"value": value, "step": progress.step, "bad": 0}
            if es.patience:
                progress.best_state = {
                    k: v.detach().clone() for k, v in self.model.state_dict().items()
                }
        else:
            progress.best["bad"] += 1
        return bool(es.patience) and progress.best["bad"] >= es.patience

    def run(self) -> Summary:
        tc, dist, files, progress = self.cfg.train, self.dist, self.files, self.progress
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
            initial=progress.step,
            desc=f"{self.cfg.model.mixer} on {self.cfg.task.name}",
            disable=not (self.show_bar and dist.is_main),
        )
        try:
            with _StopOnSignal() as stop:
                session_start, mark, mark_tokens = time.perf_counter(), time.perf_counter(), 0
                seconds_before = progress.seconds
                while not progress.done and progress.step < tc.steps:
                    record, stopping = self.train_step(progress.step, stop)
                    progress.step += 1
                    progress.last_loss = record["loss"]
                    progress.seconds = seconds_before + time.perf_counter() - session_start
                    mark_tokens += record.pop("tokens")
                    bar.update(1)
                    if progress.step % log_every == 0 or progress.step == tc.steps:
                        now = time.perf_counter()
                        record["tokens_per_s"] = mark_tokens / max(now - mark, 1e-9)
                        mark, mark_tokens = now, 0
                        self.log.write({"step": progress.step, **record})
                        bar.set_postfix(
                            loss=f"{record['loss']:.3f}", tok_s=f"{record['tokens_per_s']:.0f}"
                        )
                    if not math.isfinite(record["loss"]):
                        raise DivergedError(
                            f"training loss is {record['loss']} at step {progress.step}; "
                            "lower train.lr or set train.grad_clip"
                        )
                    if tc.eval_every and progress.step % tc.eval_every == 0:
                        progress.done = self.validate()
                    if stopping:
                        self.save_checkpoint()
                        raise TrainingInterrupted(
                            f"stopped by {stop.requested or 'a signal'} at step {progress.step}; "
                            "checkpoint saved: resume with "
                            f"globalconv train --resume {self.run_dir}"
                        )
                    due = tc.checkpoint_every and progress.step % tc.checkpoint_every == 0
                    if due and progress.step < tc.steps and not progress.done:
                        self.save_checkpoint()
        finally:
            bar.close()
        stopped_early = progress.done and progress.step < tc.steps
        progress.done = True
        self.save_checkpoint()
        return self.finish(stopped_early)

    def finish(self, stopped_early: bool) -> Summary:
        tc, spec, progress = self.cfg.train, self.spec, self.progress
        if progress.best_state:  # early stopping: report the weights of the best validation score
            self.model.load_state_dict(progress.best_state)
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
            steps_done=progress.step,
            stopped_early=stopped_early,
            best_valid_step=progress.best["step"],
            **{f"best_valid_{tc.early_stopping.metric}": progress.best["value"]},
            weights_from_step=progress.best["step"] if progress.best_state else progress.step,
            seed=tc.seed,
            batch_size=tc.batch_size,
            precision=tc.precision,
            device=self.device,
            world_size=self.dist.world_size,
            train_seconds=progress.seconds,
            train_tokens=progress.tokens,  # the budget in tokens seen (padding included)
            train_tokens_per_s=progress.tokens / max(progress.seconds, 1e-9),
            splits={name: len(split) for name, split in self.splits.items()},
            valid_source=self.valid_source,
            baseline=dataclasses.asdict(self.task.baseline(self.splits)),
            final_train_loss=progress.last_loss,
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


# -- helpers: config differences, signals, threads, RNG states, devices ------------------------


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


def _rng_state(device: str) -> dict[str, torch.Tensor]:
    state = {"cpu": torch.get_rng_state()}
    if device.startswith("cuda"):
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, torch.Tensor], device: str) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and device.startswith("cuda"):
        torch.cuda.set_rng_state(state["cuda"], device)


def device_index(device: str) -> int:
    return torch.device(device).index or 0


__all__ = ["RESUMABLE_KEYS", "TrainingInterrupted", "config_differences", "train"]
