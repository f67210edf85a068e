"""A validation split carved from training: deterministic, disjoint, stated in the summary."""

import pytest
import torch

from globalconv import config as C
from globalconv import tasks
from globalconv.tasks.common import _row_keys, carve_validation
from globalconv.train import train


def mqar_splits():
    return tasks.build("mqar", {"num_train": 400, "num_test": 100}).splits()


def test_carved_validation_is_disjoint_from_train_and_test_and_leaves_test_alone():
    splits = mqar_splits()
    carved = carve_validation(splits, 0.25, seed=0)
    assert len(carved["valid"]) == 100
    assert len(carved["train"]) <= len(splits["train"]) - 100
    train, valid, test = (set(_row_keys(carved[name])) for name in ("train", "valid", "test"))
    assert not train & valid and not train & test
    assert torch.equal(carved["test"].inputs, splits["test"].inputs)
    # every example lands in exactly one of train and valid (no duplicates in this data)
    assert len(carved["train"]) + len(carved["valid"]) == len(splits["train"])


def test_carving_is_deterministic_and_seeded():
    splits = mqar_splits()
    a, b = carve_validation(splits, 0.1, seed=3), carve_validation(splits, 0.1, seed=3)
    other = carve_validation(splits, 0.1, seed=4)
    assert torch.equal(a["valid"].inputs, b["valid"].inputs)
    assert not torch.equal(a["valid"].inputs, other["valid"].inputs)


def test_a_task_with_its_own_validation_split_keeps_it():
    splits = tasks.build("mqar", {"num_train": 200, "num_valid": 30, "num_test": 50}).splits()
    assert carve_validation(splits, 0.5, seed=0) is splits


@pytest.mark.parametrize("fraction", [0.0001, 0.9999])
def test_a_fraction_that_empties_a_split_is_refused(fraction):
    with pytest.raises(ValueError, match="valid_fraction"):
        carve_validation(mqar_splits(), fraction, seed=0)


def test_the_summary_states_the_split_sizes_its_source_budget_and_floor(tmp_path):
    cfg = C.load(
        None,
        [
            "task.name=mqar",
            "task.params.num_train=300",
            "task.params.num_test=50",
            "task.valid_fraction=0.2",
            "model.d_model=16",
            "model.n_layers=1",
            "train.steps=3",
            "train.batch_size=16",
            "train.threads=1",
        ],
    )
    summary = train(cfg, tmp_path / "run", progress=False)
    assert summary.splits == {"train": 240, "valid": 60, "test": 50}
    assert "task.valid_fraction" in summary.valid_source
    assert summary.valid_accuracy is not None and summary.test_accuracy is not None
    assert summary.train_tokens == 3 * 16 * 32
    assert summary.to_json()["baseline"] == {
        "value": 0.25,
        "what": "a random one of the 4 values in the context",
    }
