"""How circulant is trained attention? The share of attention's maps a global convolution could
reproduce.

A global convolution mixes tokens with a fixed shift-invariant matrix: circulant
(M[t, j] = W[(j - t) mod L]) for the seed's circular operator, Toeplitz (M[t, j] = W[j - t],
lower triangular when causal) for the zero-padded and causal ones. Attention mixes with
A = softmax(Q K^T / sqrt(d)), recomputed for every input. For each head of a trained attention
model this module measures its maps over a test set:

- **shift-invariant share** of the mean map Ā: ||P(Ā)||² / ||Ā||², where P is the orthogonal
  projection onto circulant (or Toeplitz) matrices, the average along each wrapped (or plain)
  diagonal. 1 for a circulant map, 1/L for a permutation that puts one entry on every wrapped
  diagonal, 1 for uniform bidirectional averaging (a constant kernel is a global convolution).
  For a causal map the Toeplitz projection keeps the upper triangle at 0, so it is the nearest
  causal convolution.
- **uniform share**: the part of Ā's energy in its constant part, plain averaging, which is
  both circulant and Toeplitz and so is counted in both shares above: it tells a diffuse map,
  shift-invariant because it is nearly flat, from a sharp one at fixed offsets.
- **input-dependent share**: Σ_i ||A_i - Ā||² / Σ_i ||A_i||², the part of the per-input maps'
  energy that no fixed matrix reproduces (0 when every input gets the same map).

Together, (1 - input-dependent) · shift-invariant is the share of the per-input maps' energy
that the best single shift-invariant matrix reproduces (Σ_i ||A_i - C||² is smallest at
C = P(Ā)): where it is near 1 a global convolution could stand in for the head's mixing;
recall, which must look up where a key occurred, should keep it low. What this leaves out:
attention's values and output projection (the conv's per-channel kernels have no counterpart
in a head's single map) and every later layer's interaction with this one.

Sequences of different true lengths give maps of different sizes, so each layer's maps are
averaged over the test sequences of its most common true length. ``report_section`` sets the
shares beside each task's verdict (the trained ``global_conv`` against attention) with two
predictions: from the mean maps' structure, and from the fixed-map share.

One file (past 400 lines) because the report section is a reading of these measures, with their
threshold and the head measures, and is tested beside them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import torch
from torch import Tensor

from globalconv.analysis.document import Heading, Paragraph, Table
from globalconv.core.errors import ConfigError

Structure = Literal["circulant", "toeplitz"]
STRUCTURES: tuple[Structure, ...] = ("circulant", "toeplitz")
# the default test sequences per run: enough for a stable mean map at the report's sizes
SAMPLES = 256
# a model is predicted replaceable when its least shift-invariant layer (heads averaged) keeps
# more than this share of its maps' energy in a shift-invariant form: more than half
THRESHOLD = 0.5


def _diagonal_index(L: int, structure: Structure, device: torch.device) -> tuple[Tensor, int]:
    """(L, L) index of each entry's diagonal, and the number of diagonals."""
    t = torch.arange(L, device=device)
    offset = t[None, :] - t[:, None]  # j - t
    if structure == "circulant":
        return offset % L, L
    if structure == "toeplitz":
        return offset + (L - 1), 2 * L - 1
    raise ValueError(f"unknown structure {structure!r}; expected 'circulant' or 'toeplitz'")


def nearest(maps: Tensor, structure: Structure) -> Tensor:
    """The nearest (Frobenius) circulant or Toeplitz matrix to each (..., L, L) map: every entry
    replaced by the mean of its wrapped (circulant) or plain (Toeplitz) diagonal."""
    if maps.dim() < 2 or maps.shape[-1] != maps.shape[-2]:
        raise ValueError(f"maps must be (..., L, L) square matrices, got {tuple(maps.shape)}")
    L = maps.shape[-1]
    index, groups = _diagonal_index(L, structure, maps.device)
    flat = maps.reshape(-1, L * L)  # (N, L*L)
    sums = flat.new_zeros(flat.shape[0], groups).index_add_(1, index.flatten(), flat)
    counts = torch.bincount(index.flatten(), minlength=groups).to(maps.dtype)
    return (sums / counts)[:, index].reshape(maps.shape)  # (..., L, L)


def shift_invariant_share(maps: Tensor, structure: Structure) -> Tensor:
    """||P(A)||² / ||A||² per (..., L, L) map: the share of its energy that a circulant or
    Toeplitz matrix reproduces, in [0, 1]; unchanged by scaling the map."""
    energy = maps.pow(2).sum((-2, -1))
    if (energy == 0).any():
        raise ValueError("a map is all zeros: its shift-invariant share is undefined")
    return nearest(maps, structure).pow(2).sum((-2, -1)) / energy


def uniform_share(maps: Tensor) -> Tensor:
    """Share of each (..., L, L) map's energy in its constant part (plain averaging, the
    simplest shift-invariant map): L² mean(A)² / ||A||²; 1 for a uniform map, 1/L for a
    permutation."""
    L = maps.shape[-1]
    return L * L * maps.mean((-2, -1)).pow(2) / maps.pow(2).sum((-2, -1))


def input_dependent_share(maps: Tensor) -> Tensor:
    """Σ_i ||A_i - Ā||² / Σ_i ||A_i||² over the first dimension of (N, ..., L, L) maps."""
    spread = (maps - maps.mean(0)).pow(2).sum((0, -2, -1))
    return spread / maps.pow(2).sum((0, -2, -1))


class _MeanMap:
    """Running Σ A_i and Σ ||A_i||² of (H, n, n) maps, in float64."""

    def __init__(self) -> None:
        self.count, self.total, self.energy = 0, None, None

    def __len__(self) -> int:
        return self.count

    def add(self, maps: Tensor) -> None:  # (B, H, n, n)
        maps = maps.double()
        total, energy = maps.sum(0), maps.pow(2).sum((0, -2, -1))
        self.total = total if self.total is None else self.total + total
        self.energy = energy if self.energy is None else self.energy + energy
        self.count += maps.shape[0]

    def mean(self) -> Tensor:  # (H, n, n)
        return self.total / self.count

    def input_dependent(self) -> Tensor:  # (H,): Σ||A_i||² - N||Ā||² over Σ||A_i||²
        return (1 - self.count * self.mean().pow(2).sum((-2, -1)) / self.energy).clamp(min=0)


@dataclass(frozen=True)
class HeadMeasure:
    layer: str  # the attention module's name in the model, e.g. "blocks.0.mixer"
    head: int
    length: int  # true length n of the sequences averaged
    sequences: int
    causal: bool
    circulant: float  # shift-invariant share of the mean map, circulant
    toeplitz: float  # ... Toeplitz (for causal maps: lower-triangular Toeplitz)
    input_dependent: float
    uniform: float  # share of the mean map in its constant part (within both of the above)

    @property
    def structure(self) -> Structure:
        """The structure of the global convolution that would replace this head: causal
        convolutions are Toeplitz, the seed's bidirectional one circulant."""
        return "toeplitz" if self.causal else "circulant"

    @property
    def shift_invariant(self) -> float:
        """Shift-invariant share of the mean map, in this head's structure."""
        return getattr(self, self.structure)

    @property
    def fixed_share(self) -> float:
        """Share of the per-input maps' energy the best fixed shift-invariant map reproduces."""
        return (1 - self.input_dependent) * self.shift_invariant


def _hook_inputs(args: tuple, kwargs: dict) -> tuple[Tensor, Tensor]:
    """(x, lengths) of a mixer call, lengths filled in when every sequence is full."""
    x = args[0]  # (B, L, D)
    lengths = args[1] if len(args) > 1 else kwargs.get("lengths")
    if lengths is None:
        lengths = torch.full((x.shape[0],), x.shape[1], dtype=torch.long)
    return x, lengths


def _length_counts(model, layers, batches, run_with) -> dict[str, Counter]:
    """The true lengths each attention layer sees over ``batches``, by name."""
    probe = {k: v[:2] if isinstance(v, Tensor) else v for k, v in batches[0].items()}
    source: dict[str, str | int | None] = {}  # batch key of the lengths, or the full length

    def tracer(name: str, mixer):
        def hook(module, args, kwargs) -> None:
            given = args[1] if len(args) > 1 else kwargs.get("lengths")
            keys = [k for k, v in probe.items() if v is given]
            source[name] = args[0].shape[1] if given is None else (keys[0] if keys else None)

        return hook

    handles = [m.register_forward_pre_hook(tracer(n, m), with_kwargs=True) for n, m in layers]
    try:
        model(**probe)
    finally:
        for handle in handles:
            handle.remove()
    counts = {name: Counter() for name, _ in layers}
    if all(source.get(name) is not None for name, _ in layers):
        for name, where in source.items():
            for inputs in batches:
                if isinstance(where, int):  # no lengths: every sequence is full
                    rows = next(v for v in inputs.values() if isinstance(v, Tensor))
                    counts[name][where] += rows.shape[0]
                else:
                    counts[name].update(int(n) for n in inputs[where])
        return counts

    def counter(name: str, mixer):  # the model changes lengths on the way: run it
        def hook(module, args, kwargs) -> None:
            counts[name].update(int(n) for n in _hook_inputs(args, kwargs)[1])

        return hook

    run_with(counter)
    return counts


@torch.no_grad()
def measure_model(
    model: torch.nn.Module, batches: list[dict], *, samples: int = SAMPLES
) -> list[HeadMeasure]:
    """Every attention head of ``model``, measured on up to ``samples`` sequences of its
    layer's most common true length among the model inputs ``batches``.

    The lengths each layer sees are counted first (read from the batches when a probe shows
    which length tensor reaches the layer, by a forward pass otherwise); then one pass averages
    the maps of that length as the layers compute them, so no activations are kept.
    """
    from globalconv.mixers.attention import Attention

    if samples < 1:
        raise ConfigError(f"samples must be >= 1, got {samples}")
    layers = [(name, m) for name, m in model.named_modules() if isinstance(m, Attention)]
    if not layers:
        raise ValueError("the model has no attention layers to measure")
    model.eval()

    def run_with(make_hook, done=lambda: False) -> None:
        hooks = [m.register_forward_pre_hook(make_hook(n, m), with_kwargs=True) for n, m in layers]
        try:
            for inputs in batches:
                model(**inputs)
                if done():
                    break
        finally:
            for hook in hooks:
                hook.remove()

    counts = _length_counts(model, layers, batches, run_with)
    # the most common length of each layer; the longest on ties
    length = {name: max(c, key=lambda k: (c[k], k)) for name, c in counts.items()}
    mean_maps = {name: _MeanMap() for name, _ in layers}

    def averager(name: str, mixer: Attention):
        def hook(module, args, kwargs) -> None:
            x, lengths = _hook_inputs(args, kwargs)
            n, mean = length[name], mean_maps[name]
            chosen = (lengths == n).nonzero()[:, 0][: samples - len(mean)]
            if len(chosen):  # a sequence of true length n, alone, gives its n x n map
                mean.add(mixer.attention_maps(x[chosen, :n]))

        return hook

    run_with(averager, done=lambda: all(len(m) >= samples for m in mean_maps.values()))
    measures = []
    for name, mixer in layers:
        mean = mean_maps[name]
        average = mean.mean()  # (H, n, n)
        circulant = shift_invariant_share(average, "circulant")
        toeplitz = shift_invariant_share(average, "toeplitz")
        dependent = mean.input_dependent()
        uniform = uniform_share(average)
        measures += [
            HeadMeasure(name, h, length[name], len(mean), mixer.causal, float(circulant[h]),
                        float(toeplitz[h]), float(dependent[h]), float(uniform[h]))
            for h in range(mixer.heads)
        ]  # fmt: skip
    return measures


def measure_run(run_dir: str | Path, *, samples: int = SAMPLES) -> list[HeadMeasure]:
    """Every attention head of a trained run (config.json + model.safetensors), measured on up
    to ``samples`` sequences of each layer's most common length in its task's test split."""
    from globalconv import tasks
    from globalconv.train.rundir import RunDir

    if samples < 1:
        raise ConfigError(f"samples must be >= 1, got {samples}")
    run = RunDir(run_dir)
    cfg, model = run.run_config(), run.load_model()
    test = tasks.build(cfg.task.name, cfg.task.params).splits()["test"]
    L = test.inputs.shape[1]
    per_batch = max(1, 2**22 // (L * L))  # bounds the (B, H, L, L) maps made at once
    batches = [test.batch(chunk)[0] for chunk in torch.arange(len(test)).split(per_batch)]
    return measure_model(model, batches, samples=samples)


# ---------------------------------------------------------------------------------------------
# the report section


class RunLike(Protocol):  # the report's Run
    path: Path

    @property
    def label(self) -> str: ...
    @property
    def mixer(self) -> str: ...
    @property
    def layers(self) -> int: ...
    @property
    def width(self) -> int: ...
    @property
    def score(self) -> float: ...
    @property
    def metric(self) -> str: ...
    @property
    def floor(self) -> float | None: ...


def _conv_gap(
    runs: list[RunLike], task: str, layers: int, width: int
) -> tuple[str, bool | None] | None:
    """global_conv against attention in one cell, by the report's verdict rule: (the verdict,
    whether the convolution beats attention: True, falls short: False, neither shown: None)."""
    from globalconv.analysis import verdicts

    cell = [r for r in runs if (r.label, r.layers, r.width) == (task, layers, width)]
    ref = [r.score for r in cell if r.mixer == "attention"]
    conv = [r.score for r in cell if r.mixer == "global_conv"]
    if not ref or not conv:
        return None
    verdict = verdicts.compare(ref, conv, metric=cell[0].metric, floor=cell[0].floor)
    text = verdict.text.removeprefix("is ")
    if verdict.word == "beats":
        return text, True
    if verdict.word == "falls short of":
        return text, False
    return text, None


BESIDE_THE_LITERATURE = (
    "Beside the literature (next section): Zoology and the 2025 mechanistic study of "
    "associative recall (arXiv:2505.15105) measure behaviour, gated convolutions falling short "
    "of attention at recall, and the latter finds attention solving it with induction heads; "
    "GFNet and Long Convs find a fixed global convolution competitive on ImageNet and on Long "
    "Range Arena. The table above asks the same question of attention's own maps: how much of "
    "them a fixed shift-invariant matrix, which is what the seed's operator is, could "
    "reproduce, task by task."
)


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


@dataclass(frozen=True)
class Judgement:
    """A task's attention runs against its verdict: do the maps predict it?"""

    task: str
    layers: int
    width: int
    shift_invariant: float  # weakest layer's mean shift-invariant share of the mean maps
    fixed: float  # weakest layer's mean fixed-map share of the per-input maps
    conv_wins: bool  # global_conv beats attention (else it falls short), by the verdict rule
    uniform: float = 0.0  # mean over heads of the uniform share
    mean_shift_invariant: float = 0.0  # mean over heads of the shift-invariant share

    @property
    def diffuse(self) -> bool:
        """Most of the maps' shift-invariant part is their constant part: near-even averaging."""
        return self.uniform >= 0.5 * self.mean_shift_invariant

    @property
    def by_structure(self) -> bool:  # predicted replaceable from the mean maps' structure
        return self.shift_invariant > THRESHOLD

    @property
    def by_fixed_map(self) -> bool:  # ... from what one fixed shift-invariant map reproduces
        return self.fixed > THRESHOLD


def _agrees(predicted: bool, gap: tuple[str, bool | None] | None) -> str:
    return "-" if gap is None or gap[1] is None else "yes" if predicted == gap[1] else "no"


def report_section(runs: list[RunLike], *, samples: int = SAMPLES) -> list:
    """The measurement for the attention runs of every task, beside the task's verdict."""
    from globalconv.train.rundir import RunDir

    trained = [r for r in runs if r.mixer == "attention" and RunDir(r.path).has_weights]
    if not trained:
        return []
    groups: dict[tuple[str, int, int], list[tuple[RunLike, list[HeadMeasure]]]] = {}
    for run in sorted(trained, key=lambda r: (r.label, r.layers, r.width, str(r.path))):
        measured = (run, measure_run(run.path, samples=samples))
        groups.setdefault((run.label, run.layers, run.width), []).append(measured)
    pct = lambda v: f"{100 * v:.0f}%"  # noqa: E731
    word = lambda replaceable: "replaceable" if replaceable else "not"  # noqa: E731
    summary, detail, judged = [], [], []
    for (task, layers, width), measured in groups.items():
        heads = [m for _, ms in measured for m in ms]
        # a model is as replaceable as its least shift-invariant layer (its heads averaged)
        layer_heads: dict[tuple[str, str], list[HeadMeasure]] = {}
        for run, ms in measured:
            for m in ms:
                layer_heads.setdefault((str(run.path), m.layer), []).append(m)
        weakest = {
            key: min(_mean(getattr(m, key) for m in hs) for hs in layer_heads.values())
            for key in ("shift_invariant", "fixed_share")
        }
        mean = {
            k: _mean(getattr(m, k) for m in heads)
            for k in (*STRUCTURES, "uniform", "input_dependent")
        }
        gap = _conv_gap(runs, task, layers, width)
        judgement = Judgement(
            task, layers, width, weakest["shift_invariant"], weakest["fixed_share"],
            gap is not None and gap[1] is True, mean["uniform"],
            _mean(m.shift_invariant for m in heads),
        )  # fmt: skip
        if gap is not None and gap[1] is not None:
            judged.append(judgement)
        summary.append(
            [task, str(layers), str(width), str(len(measured)), heads[0].structure,
             pct(mean["circulant"]),
             pct(mean["toeplitz"]), pct(mean["uniform"]), pct(mean["input_dependent"]),
             f"{pct(judgement.shift_invariant)}: {word(judgement.by_structure)}",
             f"{pct(judgement.fixed)}: {word(judgement.by_fixed_map)}",
             "-" if gap is None else f"`global_conv` {gap[0]}",
             f"{_agrees(judgement.by_structure, gap)} / {_agrees(judgement.by_fixed_map, gap)}"]
        )  # fmt: skip
        run, ms = measured[0]
        detail += [
            [task, run.path.name, m.layer.removesuffix(".mixer"), str(m.head),
             f"{m.length} ({m.sequences})", pct(m.circulant), pct(m.toeplitz), pct(m.uniform),
             pct(m.input_dependent), pct(m.fixed_share)]
            for m in ms
        ]  # fmt: skip
    return [
        Heading("How circulant is trained attention?"),
        Paragraph(
            "Each attention head's softmax map, averaged over up to "
            f"{samples} test sequences (of the most common length), and the share of its "
            "energy that the nearest circulant matrix (the seed's circular convolution: the map "
            "averaged along its wrapped diagonals) or Toeplitz matrix (a zero-padded or causal "
            "convolution: averaged along its diagonals) keeps. Plain averaging is shift-invariant "
            "(a convolution with a constant kernel), so the uniform column gives the part of "
            "both that the map's constant part alone accounts for: a diffuse map scores high "
            "everywhere, a sharp one only where its offsets are fixed. The "
            "input-dependent share is the spread of the per-input maps around that mean, as a "
            "share of their energy; the "
            "fixed-map share is what one fixed shift-invariant matrix reproduces of the per-input "
            "maps, (1 - input-dependent) · shift-invariant, with the structure of the "
            "`global_conv` that would replace the head (circulant for bidirectional tasks, "
            "Toeplitz for causal ones). Two predictions, each from a model's least "
            "shift-invariant layer (its heads averaged) and the same threshold, "
            f"{pct(THRESHOLD)}: from the mean maps' structure alone, and from the fixed-map "
            "share, which also asks the maps to be input-independent. The verdict is the trained "
            "`global_conv` against attention on the same task, depth and width, by the report's "
            "verdict rule; a prediction is checked only where that verdict is significant."
        ),
        Table(
            [
                "task",
                "layers",
                "width",
                "attention runs",
                "structure",
                "circulant",
                "Toeplitz",
                "uniform",
                "input-dependent",
                "shift-invariant, weakest layer",
                "fixed map, weakest layer",
                "verdict",
                "agrees (structure / fixed map)",
            ],
            summary,
        ),  # fmt: skip
        Paragraph(agreement(judged)),
        Paragraph(BESIDE_THE_LITERATURE),
        Paragraph("Per head, first attention run of each task and depth (means over heads above):"),
        Table(
            [
                "task",
                "run",
                "layer",
                "head",
                "length (sequences)",
                "circulant",
                "Toeplitz",
                "input-dependent",
                "fixed map",
            ],
            detail,
        ),  # fmt: skip
    ]


def agreement(judged: list[Judgement]) -> str:
    """One paragraph: do attention's maps predict where a global convolution replaces it?"""
    if not judged:
        return (
            "No cell here has a trained attention run beside a significant verdict on "
            "`global_conv` (beats or falls short of attention), so the measurements cannot be "
            "checked against one."
        )
    n = len(judged)
    structure = sum(j.by_structure == j.conv_wins for j in judged)
    fixed = sum(j.by_fixed_map == j.conv_wins for j in judged)
    cases = "; ".join(
        f"{j.task} ({j.layers} layers, width {j.width}): `global_conv` "
        f"{'beats' if j.conv_wins else 'falls short of'} attention, mean maps "
        f"{100 * j.shift_invariant:.0f}% shift-invariant, fixed map {100 * j.fixed:.0f}%"
        for j in judged
    )
    text = (
        "Do the measurements agree with the verdicts? The mean maps' structure predicts "
        f"{structure} of {n} verdicts, the fixed-map share {fixed} of {n}: {cases}."
    )
    input_dependent_wins = [j for j in judged if j.conv_wins and not j.by_fixed_map]
    if input_dependent_wins:
        text += (
            " Where the convolution beats attention on "
            + ", ".join(j.task for j in input_dependent_wins)
            + ", attention's maps still vary with the input too much for one fixed map to "
            "reproduce them: attention uses an input dependence there that the task, at this "
            "score, does not need (the convolution reaches it without one), so input-dependent "
            "maps alone are no evidence that a convolution must fail."
        )
    recall_like = [j for j in judged if not j.conv_wins and not j.by_structure]
    if recall_like:
        text += (
            " Where the convolution falls short ("
            + ", ".join(j.task for j in recall_like)
            + "), attention's maps are not shift-invariant even on average: the positions a "
            "token reads are not a fixed offset away, which no shift-invariant map reproduces."
        )
    structured = [j for j in judged if j.by_structure]
    if structured:
        describe = lambda j: (  # noqa: E731
            f"{j.task} (uniform {100 * j.uniform:.0f}% of {100 * j.mean_shift_invariant:.0f}%: "
            + ("near-even averaging)" if j.diffuse else "sharp, at fixed offsets)")
        )
        text += (
            " How much of the shift-invariant part is plain averaging: "
            + "; ".join(describe(j) for j in structured)
            + "."
        )
    surprising = [j for j in judged if not j.conv_wins and j.by_structure]
    if surprising:
        text += (
            " On "
            + ", ".join(j.task for j in surprising)
            + " the mean maps are shift-invariant yet the convolution falls short: what it "
            "lacks there is not in the maps' average structure."
        )
    return text
