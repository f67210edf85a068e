"""The comparison suites behind ``globalconv compare``: plain lists of runs, run as a sweep.

A suite is tasks (each with its own budget) × mixers × seeds (× depths), every model sized to the
reference attention model by parameters or FLOPs per token (``match``). Runs go to
``OUT/<task>/<mixer>-l<layers>-s<seed>``; a finished run is skipped and a partial one resumed, so
a suite can be stopped and rerun at will. ``globalconv report OUT`` then writes the answer.

- ``quick`` (the default, what ``make run`` runs): attention, global_conv and gated_global_conv
  on MNIST-1D (real data), MQAR (in-context recall) and byte-level language modelling on Python's
  own sources; parameter-matched; one seed. A few minutes on a 2-core CPU.
- ``depth``: the seed's claim that stacking 12-24 global convolutions models interactions of
  any complexity. Depths 1, 2, 4, 8, 12, 24 for global_conv, gated_global_conv and attention on
  mqar, induction and a small ListOps, FLOP-matched to attention at the same depth.
- ``full``: every registered mixer on recall (mqar, induction, selective_copy), long-range
  (listops, parity), real data (mnist1d and its shuffled variant), language modelling (text) and
  sequence-to-sequence (reverse), three seeds, each where the mixer can run (a bidirectional-only
  mixer skips the causal tasks). Sized for a 2-core CPU overnight with ``--jobs 2``; widths,
  lengths and steps scale with ``KEY=VALUE`` overrides on a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from globalconv import config as configuration
from globalconv import mixers, tasks
from globalconv.config import ConfigError, RunConfig
from globalconv.train import sweep

TRIO = ["attention", "global_conv", "gated_global_conv"]


@dataclass(frozen=True)
class Suite:
    description: str
    tasks: dict[str, list[str]]  # label -> overrides (task and its budget)
    mixers: list[str] | None  # None: every registered mixer
    seeds: list[int] = field(default_factory=lambda: [0])
    depths: list[int] | None = None  # None: the configured n_layers
    common: list[str] = field(default_factory=list)


QUICK_TRAIN = ["train.lr=3e-3", "train.warmup_steps=50", "train.threads=1", "match.by=params"]
LISTOPS_SMALL = [
    "task.name=listops",
    "task.params.min_len=32",
    "task.params.max_len=128",
    "task.params.max_depth=6",
    "task.params.max_args=6",
    "task.params.num_train=10000",
    "task.params.num_valid=0",
    "task.params.num_test=1000",
]

SUITES: dict[str, Suite] = {
    "quick": Suite(
        "attention vs global_conv vs gated_global_conv on real data, recall and LM (minutes)",
        tasks={
            "mnist1d": ["task.name=mnist1d", "train.steps=800"],
            "mqar": ["task.name=mqar", "train.steps=800"],
            "text": [
                "task.name=text",
                "task.params.seq_len=128",
                "task.params.max_bytes=2000000",
                "train.steps=400",
            ],
        },
        mixers=TRIO,
        common=QUICK_TRAIN,
    ),
    "depth": Suite(
        "does stacking global convolutions close the gap? depths 1-24 on recall and ListOps",
        tasks={
            "mqar": ["task.name=mqar", "train.steps=2000"],
            "induction": ["task.name=induction", "train.steps=2000"],
            "listops": [*LISTOPS_SMALL, "train.steps=2000"],
        },
        mixers=TRIO,
        depths=[1, 2, 4, 8, 12, 24],
        common=["train.lr=1e-3", "train.warmup_steps=200", "train.threads=1", "match.by=flops"],
    ),
    "full": Suite(
        "every mixer x every task family x 3 seeds (a 2-core CPU overnight)",
        tasks={
            "mqar": ["task.name=mqar", "train.steps=3000"],
            "induction": ["task.name=induction", "train.steps=2000"],
            "selective_copy": ["task.name=selective_copy", "train.steps=2000"],
            "listops": [*LISTOPS_SMALL, "train.steps=3000"],
            "parity": ["task.name=parity", "train.steps=2000"],
            "mnist1d": ["task.name=mnist1d", "train.steps=2000"],
            "mnist1d_shuffled": [
                "task.name=mnist1d",
                "task.params.shuffled=true",
                "train.steps=2000",
            ],
            "text": ["task.name=text", "task.params.seq_len=256", "train.steps=2000"],
            "reverse": ["task.name=reverse", "train.steps=2000"],
        },
        mixers=None,
        seeds=[0, 1, 2],
        common=["train.lr=1e-3", "train.warmup_steps=200", "train.threads=1", "match.by=params"],
    ),
}


def plan(
    suite_name: str,
    *,
    mixer_names: list[str] | None = None,
    task_labels: list[str] | None = None,
    seeds: list[int] | None = None,
    depths: list[int] | None = None,
    overrides: list[str] | None = None,
    base: dict | None = None,
) -> list[tuple[str, dict, RunConfig]]:
    """(run name, settings, config) of every run of the suite, all validated up front."""
    if suite_name not in SUITES:
        raise ConfigError(f"unknown suite {suite_name!r}; available: {', '.join(SUITES)}")
    suite = SUITES[suite_name]
    names = mixer_names or suite.mixers or mixers.available()
    unknown = [m for m in names if m not in mixers.available()]
    if unknown:
        raise ConfigError(
            f"unknown mixer(s) {', '.join(unknown)}; available: {', '.join(mixers.available())}"
        )
    labels = task_labels or list(suite.tasks)
    missing = [t for t in labels if t not in suite.tasks]
    if missing:
        raise ConfigError(
            f"suite {suite_name!r} has no task {', '.join(missing)}; its tasks: "
            f"{', '.join(suite.tasks)}"
        )
    runs = []
    for label in labels:
        for mixer in names:
            for depth in depths or suite.depths or [None]:
                for seed in seeds or suite.seeds:
                    settings = {"task": label, "model.mixer": mixer, sweep.SEED_KEY: seed}
                    extra = [f"model.mixer={mixer}", f"train.seed={seed}"]
                    if depth is not None:
                        settings["model.n_layers"] = depth
                        extra.append(f"model.n_layers={depth}")
                    data = configuration.apply_overrides(
                        dict(base or {}),
                        suite.common + suite.tasks[label] + extra + list(overrides or []),
                    )
                    cfg = configuration.parse(data)
                    if not _can_run(cfg):
                        continue
                    name = f"{label}/{mixer}-l{cfg.model.n_layers}-s{seed}"
                    runs.append((name, settings, cfg))
    if not runs:
        raise ConfigError("the suite has no run these mixers can do; choose other --mixers")
    return runs


def _can_run(cfg: RunConfig) -> bool:
    """Whether the mixer can take the task's direction (and both, for an encoder-decoder)."""
    spec = tasks.build(cfg.task.name, cfg.task.params).spec
    cls = mixers.get(cfg.model.mixer)
    if spec.architecture == "encoder_decoder":
        return cls.supports_causal and cls.supports_bidirectional
    return cls.supports_causal if spec.causal else cls.supports_bidirectional


def run(runs: list[tuple[str, dict, RunConfig]], out: Path, *, jobs: int, progress: bool) -> dict:
    return sweep.run_sweep(runs, out, jobs=jobs, progress=progress)


def describe() -> str:
    lines = []
    for name, suite in SUITES.items():
        mixer_names = ", ".join(suite.mixers) if suite.mixers else "every registered mixer"
        lines.append(f"{name}: {suite.description}")
        lines.append(f"  tasks: {', '.join(suite.tasks)}; mixers: {mixer_names}")
        depths = f"; depths {suite.depths}" if suite.depths else ""
        lines.append(f"  seeds: {suite.seeds}{depths}")
    return "\n".join(lines)
