"""The files task: a valid .npz round trip, inference, and one clear error per malformation."""

import json

import numpy as np
import pytest
import torch

from globalconv import cli, tasks


def good(**changes):
    rng = np.random.default_rng(0)
    arrays = dict(
        train_inputs=rng.integers(0, 7, (20, 6)),
        train_targets=rng.integers(0, 3, 20),
        test_inputs=rng.integers(0, 7, (5, 6)),
        test_targets=rng.integers(0, 3, 5),
    )
    arrays["train_inputs"][0, 0], arrays["train_targets"][0] = 6, 2  # pin the maxima
    arrays.update(changes)
    return {k: v for k, v in arrays.items() if v is not None}


def save(tmp_path, arrays, name="data.npz"):
    path = tmp_path / name
    np.savez(path, **arrays)
    return str(path)


def test_token_classification_round_trip_with_inferred_sizes(tmp_path):
    arrays = good(valid_inputs=np.ones((3, 6), dtype=np.int32), valid_targets=np.array([0, 1, 2]))
    task = tasks.build("files", dict(path=save(tmp_path, arrays)))
    spec = task.spec
    assert (spec.vocab_size, spec.num_outputs, spec.head, spec.max_len) == (7, 3, "sequence", 6)
    splits = task.splits()
    assert set(splits) == {"train", "valid", "test"}
    assert splits["valid"].inputs.dtype == torch.int64
    assert torch.equal(splits["train"].inputs, torch.from_numpy(arrays["train_inputs"]))
    given = tasks.build("files", dict(path=save(tmp_path, arrays), vocab_size=10, num_classes=4))
    assert (given.spec.vocab_size, given.spec.num_outputs) == (10, 4)


def test_real_valued_per_token_targets_with_lengths(tmp_path):
    rng = np.random.default_rng(1)
    lengths = np.array([4, 2, 3])
    targets = np.full((3, 4), -100)
    for i, n in enumerate(lengths):
        targets[i, :n] = rng.integers(0, 5, n)
    arrays = dict(
        train_inputs=rng.normal(size=(3, 4, 2)),
        train_targets=targets,
        train_lengths=lengths,
        test_inputs=rng.normal(size=(3, 4, 2)).astype(np.float32),
        test_targets=targets,
    )
    task = tasks.build("files", dict(path=save(tmp_path, arrays), causal=True))
    spec = task.spec
    assert spec.input_dim == 2 and spec.vocab_size is None and spec.head == "token"
    assert spec.causal and spec.num_outputs == 1 + int(targets.max())
    split = task.splits()["train"]
    assert split.inputs.dtype == torch.float32 and split.lengths.tolist() == [4, 2, 3]


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(test_targets=None), "array 'test_targets' is missing"),
        (dict(train_input=np.zeros((2, 2))), "unknown array 'train_input'"),
        (dict(valid_inputs=np.zeros((2, 6), dtype=int)), "'valid_targets' is missing"),
        (
            dict(test_lengths=np.ones(5, dtype=int), test_inputs=None, test_targets=None),
            "'test_inputs' is missing",
        ),
        (dict(train_targets=np.zeros(19, dtype=int)), r"train_targets has shape \(19,\)"),
        (dict(train_targets=np.zeros(20)), "train_targets has dtype float64"),
        (dict(test_inputs=np.zeros((5, 6))), "test_inputs is float64 but train_inputs is int64"),
        (dict(train_inputs=np.zeros((20, 6, 2), dtype=int)), "must be \\(N, L\\)"),
        (dict(train_inputs=np.array(["a"] * 20)), "save token ids as int64"),
        (
            dict(test_inputs=np.zeros((0, 6), dtype=int), test_targets=np.zeros(0, dtype=int)),
            "test_inputs is empty",
        ),
        (dict(test_inputs=np.full((5, 6), -1)), "token ids must be >= 0"),
        (dict(test_targets=np.array([0, 1, 2, -3, 1])), "test_targets has negative labels"),
        (dict(test_targets=np.zeros((5, 6), dtype=int)), "train_targets is not"),
        (dict(train_lengths=np.full(20, 7)), r"train_lengths must lie in \[1, 6\]"),
        (dict(train_lengths=np.ones(3, dtype=int)), r"train_lengths must be integer \(N,\)"),
    ],
)
def test_malformed_files_name_the_array(tmp_path, changes, message):
    with pytest.raises(ValueError, match=message):
        tasks.build("files", dict(path=save(tmp_path, good(**changes)))).splits()


def test_range_and_scoring_errors(tmp_path):
    path = save(tmp_path, good())
    with pytest.raises(ValueError, match="token id 6 is out of range for vocab_size=5"):
        tasks.build("files", dict(path=path, vocab_size=5)).splits()
    with pytest.raises(ValueError, match="label 2 is out of range for num_classes=2"):
        tasks.build("files", dict(path=path, num_classes=2)).splits()
    per_token = good(train_targets=np.full((20, 6), 1), test_targets=np.full((5, 6), -100))
    with pytest.raises(ValueError, match="test_targets scores nothing"):
        tasks.build("files", dict(path=save(tmp_path, per_token))).splits()
    beyond = good(
        train_targets=np.full((20, 6), 1),
        test_targets=np.full((5, 6), 1),
        train_lengths=np.full(20, 3),
    )
    with pytest.raises(ValueError, match="scores positions beyond train_lengths"):
        tasks.build("files", dict(path=save(tmp_path, beyond))).splits()
    nan = good(train_inputs=np.full((20, 6), np.nan), test_inputs=np.zeros((5, 6)))
    with pytest.raises(ValueError, match="NaN"):
        tasks.build("files", dict(path=save(tmp_path, nan))).splits()


def test_unreadable_files(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        tasks.build("files", dict(path=str(tmp_path / "missing.npz"))).splits()
    (tmp_path / "junk.npz").write_text("not a zip")
    with pytest.raises(ValueError, match="not a readable .npz"):
        tasks.build("files", dict(path=str(tmp_path / "junk.npz"))).splits()
    np.save(tmp_path / "one.npy", np.zeros(3))
    with pytest.raises(ValueError, match="holds a single array"):
        tasks.build("files", dict(path=str(tmp_path / "one.npy"))).splits()
    objects = good(train_targets=np.array([[1], [1, 2]] * 10, dtype=object))
    np.savez(tmp_path / "obj.npz", **objects)
    with pytest.raises(ValueError, match="'train_targets' holds Python objects"):
        tasks.build("files", dict(path=str(tmp_path / "obj.npz"))).splits()


def test_cli_trains_on_a_file_and_reports_bad_ones(tmp_path, capsys):
    path = save(tmp_path, good())
    out = tmp_path / "run"
    args = [
        "train",
        "-q",
        "--out",
        str(out),
        "task.name=files",
        f"task.params.path={path}",
        "train.steps=2",
        "train.batch_size=8",
        "model.d_model=16",
        "model.n_layers=1",
    ]
    assert cli.main(args) == 0
    assert json.loads((out / "summary.json").read_text())["task"] == "files"
    bad = save(tmp_path, good(test_targets=None), "bad.npz")
    assert (
        cli.main(
            ["train", "-q", "--out", str(out / "bad"), "task.name=files", f"task.params.path={bad}"]
        )
        == 2
    )
    assert "array 'test_targets' is missing" in capsys.readouterr().err
