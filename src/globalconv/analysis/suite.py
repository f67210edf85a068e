"""The comparison suites behind ``globalconv compare``: experiments as data.

A suite is tasks (each with its own budget) x mixers x depths x widths; every model is sized to
the reference attention model by parameters or FLOPs per token (``match``). Each cell is run by
``train.protocol``: its grid (at least the learning rate) is tuned on a validation split, the
best point is trained for every seed, and only those runs give test numbers. Runs go to
``OUT/<task>/<mixer>-l<layers>[-d<width>]/<point>-s<seed>``; finished runs are read back and
partial ones resumed, so a suite can be stopped and rerun at will. ``globalconv report OUT``
then writes the answer.

- ``quick`` (what ``make run`` runs): attention, global_conv and gated_global_conv on MNIST-1D
  and MQAR, one seed, minutes on a 2-core CPU. Every cell is a cell of a reference study,
  trained at the learning rate that study chose (``QUICK_CHOICES``), so each number is that
  study's first seed and has the study's mean beside it.
- ``mnist1d``, ``recall``, ``depth``, ``lm``, ``longrange``: the reference studies, whose
  committed results (``results/<suite>``) the README's answer is taken from.
- ``full``: every registered mixer on every task family, three seeds.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from globalconv import config as configuration
from globalconv import mixers, tasks
from globalconv.config import ConfigError, RunConfig
from globalconv.train import protocol

TRIO = ["attention", "global_conv", "gated_global_conv"]
# Tuned per cell on validation; Zoology takes the best of four log-spaced rates in 1e-4..1e-2.
LR_GRID = {"train.lr": [3e-4, 1e-3, 3e-3]}
STUDY_GRID = {"train.lr": [1e-3, 3e-3, 1e-2]}
# Tried one at a time, the nearest beyond the edge first, while a study's best learning rate is
# the largest (or smallest) in its grid.
WIDEN_LR = {"train.lr": [1e-4, 3e-4, 3e-2, 1e-1]}
EVALS_PER_RUN = 20  # validation passes per run when a suite sets no train.eval_every
PROTOCOL = ["task.valid_fraction=0.1"]  # tasks without a validation split of their own get one


@dataclass(frozen=True)
class Suite:
    """A comparison as data: tasks (each with its budget) x mixers x depths x widths, each cell
    tuned on validation over ``grid`` (plus ``mixer_grid[mixer]``), then trained per seed. A task
    may take its own depths (``task_depths``) and a subset of the mixers (``task_mixers``)."""

    description: str
    tasks: dict[str, list[str]]  # label -> overrides (task and its budget)
    mixers: list[str] | None  # None: every registered mixer
    seeds: list[int] = field(default_factory=lambda: [0])
    depths: list[int] | None = None  # None: the configured n_layers
    task_depths: dict[str, list[int]] = field(default_factory=dict)  # a task's own, over depths
    task_mixers: dict[str, list[str]] = field(default_factory=dict)  # a task's own, of mixers
    widths: list[int] | None = None  # None: the configured d_model
    common: list[str] = field(default_factory=list)
    grid: dict[str, list[Any]] = field(default_factory=lambda: dict(LR_GRID))
    mixer_grid: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    # values a reference study's tuning chose, used as they are instead of tuned again:
    # task label -> mixer -> {key: value}; ``fixed_from``: task label -> that study, for the records
    fixed: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    fixed_from: dict[str, str] = field(default_factory=dict)
    # values to try beyond a grid axis when a cell's choice lies at its edge (``protocol``)
    widen: dict[str, list[Any]] = field(default_factory=dict)


SMALL_TRAIN = ["train.warmup_steps=100", "train.threads=1"]
LISTOPS_SMALL = [
    "task.name=listops",
    "task.params.min_len=32",
    "task.params.max_len=128",
    "task.params.max_depth=6",
    "task.params.max_args=6",
    "task.params.num_train=10000",
    "task.params.num_valid=1000",
    "task.params.num_test=1000",
]
MNIST1D_MIXERS = ["attention", "global_conv", "gated_global_conv", "hyena", "lightconv", "fnet",
                  "mlp_mixer"]  # fmt: skip
RECALL_MIXERS = ["attention", "global_conv", "gated_global_conv", "hyena"]
POSITIONS = {"attention": {"model.positions": ["sinusoidal", "learned"]}}


def _mqar(L: int, pairs: int, steps: int) -> list[str]:
    return [
        "task.name=mqar",
        f"task.params.seq_len={L}",
        f"task.params.num_kv_pairs={pairs}",
        "task.params.vocab_size=256",
        "task.params.num_train=20000",
        "task.params.num_test=1000",
        f"train.steps={steps}",
    ]


MNIST1D_TASKS = {
    "mnist1d": ["task.name=mnist1d", "train.steps=3000"],
    "mnist1d_shuffled": ["task.name=mnist1d", "task.params.shuffled=true", "train.steps=3000"],
}
# What the reference studies' tuning chose for the cells the quick suite shares with them (each
# cell's selection.json under results/; tests/analysis/test_suite.py checks they agree), so
# `make run` trains those cells as the studies did, at their first seed.
QUICK_CHOICES = {
    "mnist1d": {
        "attention": {"train.lr": 3e-3, "model.positions": "sinusoidal"},
        "global_conv": {"train.lr": 1e-2},
        "gated_global_conv": {"train.lr": 1e-2},
    },
    "mqar_32x4": {m: {"train.lr": 3e-3} for m in TRIO},  # the recall study's width-64 cells
}

SUITES: dict[str, Suite] = {
    "quick": Suite(
        "attention vs global_conv vs gated_global_conv on MNIST-1D and MQAR: cells of the "
        "reference studies at the learning rates they chose, one seed (minutes)",
        tasks={
            "mnist1d": [*MNIST1D_TASKS["mnist1d"], "match.by=flops"],
            "mqar_32x4": [*_mqar(32, 4, 2000), "model.d_model=64", "match.by=params"],
        },
        mixers=TRIO,
        common=SMALL_TRAIN,
        fixed=QUICK_CHOICES,
        fixed_from={
            "mnist1d": "chosen by the mnist1d study (results/mnist1d)",
            "mqar_32x4": "chosen by the recall study (results/recall, width 64)",
        },
    ),
    # -- the reference studies (results/<name>): see the README's "The answer"
    "mnist1d": Suite(
        "real data: MNIST-1D and its shuffled variant, seven mixers, FLOP-matched, 3 seeds",
        tasks=MNIST1D_TASKS,
        mixers=MNIST1D_MIXERS,
        seeds=[0, 1, 2],
        common=[*SMALL_TRAIN, "match.by=flops"],
        grid=STUDY_GRID,
        widen=WIDEN_LR,
        mixer_grid=POSITIONS,
    ),
    "recall": Suite(
        "recall capacity (Zoology's Figure 2 at CPU scale): MQAR, length and pairs growing "
        "together, x width, parameter-matched to attention at each width",
        tasks={"mqar_32x4": _mqar(32, 4, 2000), "mqar_64x8": _mqar(64, 8, 2000)},
        mixers=RECALL_MIXERS,
        seeds=[0, 1, 2],
        widths=[32, 64],
        common=[*SMALL_TRAIN, "match.by=params"],
        grid=STUDY_GRID,
        widen=WIDEN_LR,
    ),
    "depth": Suite(
        "the seed's claim: does stacking global convolutions close the gap on recall? MQAR "
        "(L=32, 4 pairs) at depths 1-12 in post-norm blocks, and attention and global_conv at 12 "
        "in pre-norm blocks (which train deep stacks more readily), FLOP-matched to attention at "
        "each depth, 3 seeds (depth 24, induction and ListOps are cut to fit a 2-core CPU)",
        tasks={
            "mqar_32x4": _mqar(32, 4, 2000),
            "mqar_32x4_prenorm": [*_mqar(32, 4, 2000), "model.norm=pre"],
        },
        mixers=TRIO,
        depths=[1, 2, 4, 8, 12],
        task_depths={"mqar_32x4_prenorm": [12]},
        task_mixers={"mqar_32x4_prenorm": ["attention", "global_conv"]},
        seeds=[0, 1, 2],
        common=[*SMALL_TRAIN, "match.by=flops"],
        grid=STUDY_GRID,
        widen=WIDEN_LR,
    ),
    "lm": Suite(
        "byte-level language modelling (bits per byte) at equal FLOPs: 128-byte windows of the "
        "first 4 MB of the Python stdlib's source, 2000 steps of 32 windows (8.2M bytes), 3 seeds",
        tasks={
            "text": [
                "task.name=text",
                "task.params.seq_len=128",
                "task.params.max_bytes=4000000",
                "train.batch_size=32",
                "train.steps=2000",
            ]
        },
        mixers=RECALL_MIXERS,
        seeds=[0, 1, 2],
        common=[*SMALL_TRAIN, "match.by=flops"],
        grid=STUDY_GRID,
        widen=WIDEN_LR,
    ),
    "longrange": Suite(
        "long-range classification beside LRA's Transformer: small ListOps (32-128 tokens, "
        "3000 steps) and parity (64 bits, 2000 steps), batches of 32, FLOP-matched, 3 seeds",
        tasks={
            "listops": [*LISTOPS_SMALL, "train.batch_size=32", "train.steps=3000"],
            "parity": ["task.name=parity", "train.batch_size=32", "train.steps=2000"],
        },
        mixers=RECALL_MIXERS,
        seeds=[0, 1, 2],
        common=[*SMALL_TRAIN, "match.by=flops"],
        grid=STUDY_GRID,
        widen=WIDEN_LR,
    ),
    "full": Suite(
        "every mixer x every task family x 3 seeds (a 2-core CPU for days)",
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
        common=[*SMALL_TRAIN, "match.by=params"],
    ),
}


def plan(
    suite_name: str,
    *,
    mixer_names: list[str] | None = None,
    task_labels: list[str] | None = None,
    seeds: list[int] | None = None,
    depths: list[int] | None = None,
    widths: list[int] | None = None,
    grid: dict[str, list[Any]] | None = None,
    overrides: list[str] | None = None,
    base: dict | None = None,
    widen: bool = True,
) -> list[protocol.Cell]:
    """The suite's cells (task x mixer x depth), every run of each validated up front.

    grid: axes replacing the suite's own (an empty dict tunes nothing). An override of a key the
    grid tunes (``train.lr=3e-3``) fixes that key: the axis is dropped, the value used.
    widen: whether a cell whose choice lies at the edge of one of the suite's grid axes tries
    the suite's ``widen`` values beyond it (never for a ``grid`` given here: that one is exact).
    """
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
    fixed = {item.partition("=")[0] for item in overrides or []}
    axes = {k: v for k, v in (suite.grid if grid is None else grid).items() if k not in fixed}
    run_seeds = tuple(seeds or suite.seeds)
    cells: list[protocol.Cell] = []
    for label in labels:
        for mixer in [m for m in names if m in suite.task_mixers.get(label, names)]:
            own = suite.mixer_grid.get(mixer, {}) if grid is None else {}
            cell_grid = {**axes, **own}
            cell_grid = {k: v for k, v in cell_grid.items() if k not in fixed}
            # a study's choice stands unless this command tunes or sets that key itself
            chosen = {k: v for k, v in suite.fixed.get(label, {}).get(mixer, {}).items()
                      if k not in fixed and (grid is None or k not in grid)}  # fmt: skip
            cell_grid = {k: v for k, v in cell_grid.items() if k not in chosen}
            widening = suite.widen if widen and grid is None else {}
            cell_widen = {k: list(v) for k, v in widening.items() if k in cell_grid}
            for depth in depths or suite.task_depths.get(label) or suite.depths or [None]:
                for width in widths or suite.widths or [None]:
                    extra = [f"model.mixer={mixer}"]
                    extra += [f"{k}={json.dumps(v)}" for k, v in chosen.items()]
                    if depth is not None:
                        extra.append(f"model.n_layers={depth}")
                    if width is not None:  # the reference's width: matching sizes the mixer
                        extra.append(f"model.d_model={width}")
                    data = configuration.apply_overrides(
                        copy.deepcopy(base or {}),
                        PROTOCOL
                        + suite.common
                        + suite.tasks[label]
                        + extra
                        + list(overrides or []),
                    )
                    cfg = configuration.parse(data)
                    if not _can_run(cfg):
                        continue
                    if not cfg.train.eval_every:  # a validation curve, for the convergence check
                        every = max(1, cfg.train.steps // EVALS_PER_RUN)
                        data = configuration.apply_overrides(data, [f"train.eval_every={every}"])
                    layers = cfg.model.n_layers
                    name = f"{label}/{mixer}-l{layers}" + (f"-d{width}" if width else "")
                    labels_ = {"task": label, "model.mixer": mixer, "model.n_layers": layers}
                    if width:
                        labels_["model.d_model"] = width
                    cells.append(
                        protocol.Cell(
                            name=name,
                            base=data,
                            grid=cell_grid,
                            seeds=run_seeds,
                            tune_seed=run_seeds[0],
                            labels=labels_,
                            fixed=chosen,
                            fixed_from=suite.fixed_from.get(label, "") if chosen else "",
                            widen=cell_widen,
                        )
                    )
    if not cells:
        raise ConfigError("the suite has no run these mixers can do; choose other --mixers")
    for cell in cells:
        cell.validate()
    return cells


def _can_run(cfg: RunConfig) -> bool:
    """Whether the mixer can take the task's direction (and both, for an encoder-decoder)."""
    spec = tasks.build(cfg.task.name, cfg.task.params).spec
    cls = mixers.get(cfg.model.mixer)
    if spec.architecture == "encoder_decoder":
        return cls.supports_causal and cls.supports_bidirectional
    return cls.supports_causal if spec.causal else cls.supports_bidirectional


def run(
    cells: list[protocol.Cell],
    out: Path,
    *,
    jobs: int,
    progress: bool,
    rerun: bool = False,
    executor: str = "local",
    ray_address: str | None = None,
) -> dict:
    return protocol.run(
        cells,
        out,
        jobs=jobs,
        progress=progress,
        rerun=rerun,
        executor=executor,
        ray_address=ray_address,
    )


def describe() -> str:
    lines = []
    for name, suite in SUITES.items():
        mixer_names = ", ".join(suite.mixers) if suite.mixers else "every registered mixer"
        lines.append(f"{name}: {suite.description}")
        lines.append(f"  tasks: {', '.join(suite.tasks)}; mixers: {mixer_names}")
        depths = f"; depths {suite.depths}" if suite.depths else ""
        depths += "".join(f"; {t} at depths {d}" for t, d in suite.task_depths.items())
        depths += "".join(f"; {t} with {', '.join(m)} only" for t, m in suite.task_mixers.items())
        widths = f"; widths {suite.widths}" if suite.widths else ""
        lines.append(f"  seeds: {suite.seeds}{depths}{widths}")
        tuned = {**suite.grid, **{f"{k} ({m})": v for m, g in suite.mixer_grid.items()
                                  for k, v in g.items()}}  # fmt: skip
        grid = "; ".join(f"{k} in {v}" for k, v in tuned.items()) or "nothing"
        lines.append(f"  tuned on validation: {grid}")
        if suite.widen:
            beyond = "; ".join(f"{k} to {v}" for k, v in suite.widen.items())
            lines.append(f"  widened at an edge (the nearest value beyond it first): {beyond}")
    return "\n".join(lines)
