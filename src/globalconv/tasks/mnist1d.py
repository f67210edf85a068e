"""MNIST-1D (Greydanus & Kobak 2020, "Scaling down deep learning with MNIST-1D").

Ten digit templates as 1-D signals of length 40, randomly padded, translated, scaled, sheared
and corrupted with correlated and white noise, generated locally by the ``mnist1d`` package with
its published settings (4000 train / 1000 test). Translation structure makes this a task where a
convolution's prior should help; ``shuffled`` applies one fixed permutation to the positions of
every example, which the paper uses to remove that spatial prior.

Inputs are (N, 40, 1) floats, standardised with the training mean and std. Metric: accuracy.
Published reference accuracies (test): logistic regression 32%, MLP 68%, CNN 94%, GRU 91%.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from pydantic import Field

from globalconv.tasks.base import Split, Task, TaskParams, TaskSpec, register_task


class Mnist1dParams(TaskParams):
    seed: int = Field(42, description="the mnist1d generator's seed (42 is the published data)")
    shuffled: bool = Field(False, description="permute positions with one fixed permutation")
    permutation_seed: int = 0
    valid_fraction: float = Field(
        0.0, ge=0.0, lt=1.0, description="hold out this share of the 4000 training examples"
    )


@functools.lru_cache(maxsize=2)
def published(seed: int) -> dict[str, np.ndarray]:
    """The mnist1d package's dataset for ``seed`` with its published settings, generated
    locally (no download) once per process: generation takes seconds, variants reuse it."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.seed = seed
    data = make_dataset(args)
    out = {
        "x": np.asarray(data["x"], dtype=np.float32),
        "x_test": np.asarray(data["x_test"], dtype=np.float32),
        "y": np.asarray(data["y"], dtype=np.int64),
        "y_test": np.asarray(data["y_test"], dtype=np.int64),
    }
    for array in out.values():
        array.setflags(write=False)  # shared between calls: never modified in place
    return out


@register_task("mnist1d")
class Mnist1d(Task):
    Params = Mnist1dParams
    description = "MNIST-1D digit classification from length-40 signals (real data)"

    @property
    def spec(self) -> TaskSpec:
        return TaskSpec(max_len=40, num_outputs=10, head="sequence", input_dim=1)

    def splits(self) -> dict[str, Split]:
        data = published(self.params.seed)
        x_train, x_test = data["x"], data["x_test"]
        if self.params.shuffled:
            perm = np.random.default_rng(self.params.permutation_seed).permutation(x_train.shape[1])
            x_train, x_test = x_train[:, perm], x_test[:, perm]
        mean, std = x_train.mean(), x_train.std()
        to_inputs = lambda x: torch.from_numpy((x - mean) / std)[..., None]  # noqa: E731
        y_train = torch.from_numpy(data["y"].copy())
        y_test = torch.from_numpy(data["y_test"].copy())
        train = Split(to_inputs(x_train), y_train)
        splits = {"test": Split(to_inputs(x_test), y_test)}
        n_valid = int(round(self.params.valid_fraction * len(train)))
        if n_valid:
            splits["valid"] = Split(train.inputs[-n_valid:], train.targets[-n_valid:])
            train = Split(train.inputs[:-n_valid], train.targets[:-n_valid])
        splits["train"] = train
        return splits
