"""ListOps as in Long Range Arena (Tay et al. 2021; after Nangia & Bowman 2018).

Nested prefix expressions over the digits 0-9 with four operators, e.g.

    [MAX 4 3 [MIN 2 3 ] 1 0 [MED 1 5 8 9 2 ] ]   ->   5

MIN, MAX, MED (the median; for an even count, the floor of the mean of the two middle values,
which is LRA's ``int(np.median(...))``) and SM (sum modulo 10). The answer is one of 10 classes;
sequence classification, metric accuracy.

Trees are drawn by LRA's process: the root is an operator with 2..max_args arguments (uniform);
each argument is an operator with probability 1/4 and a uniform digit otherwise, and nodes at
depth ``max_depth`` (the root is depth 1) are always digits. Trees whose token count falls
outside [min_len, max_len] are rejected, as LRA does. Generation here is level by level over
whole batches of trees with numpy (sizes bottom-up, token positions top-down, values by segment
reductions), so no Python loop runs per token; results are cached under ``cache_dir``.

Tokens: pad 0, digits 1-10, [MIN 11, [MAX 12, [MED 13, [SM 14, ] 15. Lengths are given and the
rest of each row is padding. LRA's split is 96,000 / 2,000 / 2,000 at lengths 500-2000 with
max_depth 10 and max_args 10: the defaults keep its lengths and trees with 20,000 training
examples (``num_train=96000`` for LRA's size); ``configs/listops-small.yaml`` is a quick setting.
Training expressions that also occur in validation or test are removed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from pydantic import Field, model_validator

from globalconv.core.errors import ConfigError
from globalconv.tasks.base import Split, Task, TaskSpec, register_task
from globalconv.tasks.common import (
    SyntheticParams,
    cached,
    default_cache_dir,
    drop_leaks,
    params_key,
    rng,
    sizes,
)

PAD, DIGIT, OPERATOR, CLOSE = 0, 1, 11, 15  # digit d is token 1+d, operator i is token 11+i
OPERATORS = ("[MIN", "[MAX", "[MED", "[SM")
VOCAB = 16
OPERATOR_P = 0.25  # LRA's chance that an argument is itself an operator
VERSION = 1  # bump when generation changes, so old cache files are not reused


class ListOpsParams(SyntheticParams):
    num_train: int = Field(20_000, ge=1, description="training expressions (LRA: 96,000)")
    num_valid: int = Field(2_000, ge=0, description="validation expressions")
    num_test: int = Field(2_000, ge=1, description="test expressions")
    min_len: int = Field(500, ge=4, description="fewest tokens in an expression")
    max_len: int = Field(2_000, ge=4, description="most tokens in an expression")
    max_depth: int = Field(10, ge=2, description="tree depth limit; the root is depth 1")
    max_args: int = Field(10, ge=2, description="most arguments of an operator")
    cache_dir: str | None = Field(None, description="default: ~/.cache/globalconv")

    @model_validator(mode="after")
    def _reachable(self) -> ListOpsParams:
        if self.min_len > self.max_len:
            raise ValueError(f"min_len={self.min_len} exceeds max_len={self.max_len}")
        most = largest_tree(self.max_depth, self.max_args)
        if self.min_len > most:
            raise ValueError(
                f"with max_depth={self.max_depth} and max_args={self.max_args} no expression has "
                f"more than {most} tokens; lower min_len or raise max_depth / max_args"
            )
        return self


def largest_tree(max_depth: int, max_args: int) -> int:
    """Tokens in the largest tree: every node above max_depth an operator with max_args args."""
    size = 1
    for _ in range(max_depth - 1):
        size = 2 + max_args * size
    return size


def _reduce(op: np.ndarray, values: np.ndarray, first: np.ndarray, count: np.ndarray):
    """Apply each operator to its arguments, held in ``values`` as contiguous segments.

    op, first, count: (K,) per operator; values: (sum(count),) the arguments in order.
    """
    out = np.minimum.reduceat(values, first)  # MIN, then the other operators overwrite
    is_max, is_sum, is_med = op == 1, op == 3, op == 2
    out[is_max] = np.maximum.reduceat(values, first)[is_max]
    out[is_sum] = (np.add.reduceat(values, first) % 10)[is_sum]
    if is_med.any():  # sort each MED's arguments with one integer sort: key = segment*10 + v
        c = count[is_med]
        segment = np.repeat(np.arange(len(c)), c)
        ordered = np.sort(segment * 10 + values[np.repeat(is_med, count)]) % 10
        f = np.cumsum(c) - c
        out[is_med] = (ordered[f + (c - 1) // 2] + ordered[f + c // 2]) // 2
    return out


def generate_batch(g: np.random.Generator, m: int, p: ListOpsParams):
    """m random trees; returns (tokens (k, max_len) uint8, lengths (k,), labels (k,)) for the k
    trees whose length lies in [min_len, max_len]."""
    # Top-down: one level of nodes at a time. Children of a level's nodes are contiguous and
    # in order, so every operator's arguments form a segment of the next level.
    levels = []
    example = np.arange(m)
    is_op = np.ones(m, dtype=bool)  # the root is an operator
    depth = 1
    while True:
        n = len(example)
        count = np.where(is_op, g.integers(2, p.max_args + 1, size=n), 0)
        level = dict(
            example=example,
            is_op=is_op,
            op=g.integers(0, len(OPERATORS), size=n, dtype=np.int8),
            digit=g.integers(0, 10, size=n, dtype=np.int8),
            count=count,
            first=np.cumsum(count) - count,  # index of the first child in the next level
        )
        levels.append(level)
        if not is_op.any():
            break
        depth += 1
        example = np.repeat(example, count)
        if depth < p.max_depth:
            is_op = g.random(len(example)) < OPERATOR_P
        else:
            is_op = np.zeros(len(example), dtype=bool)

    # Bottom-up: sizes (tokens in a subtree) and values.
    below_size = below_value = None
    for level in reversed(levels):
        ops = level["is_op"]
        size = np.ones(len(ops), dtype=np.int64)
        value = level["digit"].astype(np.int64)
        if ops.any():
            first, count = level["first"][ops], level["count"][ops]
            size[ops] = 2 + np.add.reduceat(below_size, first)
            value[ops] = _reduce(level["op"][ops], below_value, first, count)
        level["size"], level["value"] = size, value
        below_size, below_value = size, value

    root = levels[0]
    keep = (root["size"] >= p.min_len) & (root["size"] <= p.max_len)  # (m,)
    row = np.cumsum(keep) - 1  # output row of each kept tree
    tokens = np.zeros((int(keep.sum()), p.max_len), dtype=np.uint8)

    # Top-down again: each node's first token position, then write the kept trees' tokens.
    start = np.zeros(m, dtype=np.int64)
    for i, level in enumerate(levels):
        ex, ops, size = level["example"], level["is_op"], level["size"]
        kept = keep[ex]
        r, s = row[ex[kept]], start[kept]
        token = np.where(ops, OPERATOR + level["op"], DIGIT + level["digit"])
        tokens[r, s] = token[kept]
        closing = kept & ops
        tokens[row[ex[closing]], (start + size - 1)[closing]] = CLOSE
        if i + 1 < len(levels):
            child = levels[i + 1]
            parent = np.repeat(np.arange(len(ops)), level["count"])
            before = np.cumsum(child["size"]) - child["size"]  # exclusive prefix sums
            offset = before - before[level["first"][parent]]  # within the parent's segment
            start = start[parent] + 1 + offset
    return tokens, root["size"][keep], root["value"][keep]


def generate(p: ListOpsParams, n: int, g: np.random.Generator):
    """n expressions (tokens (n, max_len) uint8, lengths (n,), labels (n,)), in batches."""
    parts, have, tried = [], 0, 0
    while have < n:
        m = min(max(4 * (n - have), 1024), 4096)  # batches bound the memory (~3M nodes)
        batch = generate_batch(g, m, p)
        tried += m
        if len(batch[1]):
            parts.append(batch)
            have += len(batch[1])
        elif tried >= 100_000:
            raise ConfigError(
                f"no ListOps tree of length in [{p.min_len}, {p.max_len}] in {tried} draws; "
                "widen the range or raise max_depth / max_args"
            )
    return tuple(np.concatenate(arrays)[:n] for arrays in zip(*parts, strict=True))


def evaluate(tokens: list[int]) -> int:
    """The value of one expression given as token ids (a plain stack evaluator, for checking)."""
    stack: list[list[int]] = [[]]
    for t in tokens:
        if DIGIT <= t < OPERATOR:
            stack[-1].append(t - DIGIT)
        elif OPERATOR <= t < CLOSE:
            stack.append([t - OPERATOR])
        elif t == CLOSE:
            op, *args = stack.pop()
            args.sort()
            k = len(args)
            result = [
                args[0],
                args[-1],
                (args[(k - 1) // 2] + args[k // 2]) // 2,
                sum(args) % 10,
            ][op]
            stack[-1].append(result)
    (value,) = stack[0]
    return value


def to_text(tokens: list[int]) -> str:
    names = [""] + [str(d) for d in range(10)] + list(OPERATORS) + ["]"]
    return " ".join(names[t] for t in tokens if t != PAD)


@register_task("listops")
class ListOps(Task):
    Params = ListOpsParams
    description = "ListOps (LRA): evaluate nested MIN/MAX/MED/SM expressions, 10 classes"

    @property
    def spec(self) -> TaskSpec:
        return TaskSpec(max_len=self.params.max_len, num_outputs=10, vocab_size=VOCAB)

    def cache_path(self) -> Path:
        root = Path(self.params.cache_dir) if self.params.cache_dir else default_cache_dir()
        return root / f"listops-{params_key(self.params, VERSION)}.safetensors"

    def splits(self) -> dict[str, Split]:
        tensors = cached(self.cache_path(), self._make)
        return {
            name: Split(
                tensors[f"{name}.inputs"].long(),
                tensors[f"{name}.targets"].long(),
                tensors[f"{name}.lengths"].long(),
            )
            for name in sizes(self.params)
        }

    def _make(self) -> dict[str, torch.Tensor]:
        p = self.params
        splits = {}
        for name, n in sizes(p).items():
            tokens, lengths, labels = generate(p, n, rng(p.seed, f"listops/{name}"))
            splits[name] = Split(
                torch.from_numpy(tokens), torch.from_numpy(labels), torch.from_numpy(lengths)
            )
        splits = drop_leaks(splits)
        tensors = {}
        for name, s in splits.items():
            tensors[f"{name}.inputs"] = s.inputs  # uint8 on disk: 1 byte per token
            tensors[f"{name}.targets"] = s.targets.to(torch.uint8)
            tensors[f"{name}.lengths"] = s.lengths.to(torch.int32)
        return tensors
