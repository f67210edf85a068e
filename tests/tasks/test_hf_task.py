"""The Hugging Face adapter, on datasets the test writes to disk (skipped without datasets)."""

import sys

import pytest
import torch

from globalconv import tasks
from globalconv.tasks import IGNORE_INDEX


def test_missing_datasets_package_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "datasets", None)  # import fails as if not installed
    with pytest.raises(ValueError, match=r"pip install 'globalconv\[hf\]'"):
        tasks.build("hf", dict(path=str(tmp_path))).splits()


@pytest.fixture
def save(tmp_path):
    """Write {split: columns} as a DatasetDict on disk; return its path."""
    datasets = pytest.importorskip("datasets")

    def write(splits, name="ds"):
        path = tmp_path / name
        data = {k: datasets.Dataset.from_dict(v) for k, v in splits.items()}
        datasets.DatasetDict(data).save_to_disk(str(path))
        return str(path)

    return write


def test_text_classification_from_disk(save):
    path = save(
        {
            "train": {"text": ["abc", "hello", "hé"], "label": [0, 1, 2]},
            "validation": {"text": ["xy"], "label": [1]},
            "test": {"text": ["zz top"], "label": [0]},
        }
    )
    task = tasks.build("hf", dict(path=path, valid_split="validation"))
    spec = task.spec
    assert (spec.vocab_size, spec.num_outputs, spec.head, spec.causal) == (
        256,
        3,
        "sequence",
        False,
    )
    splits = task.splits()
    assert set(splits) == {"train", "valid", "test"}
    train = splits["train"]
    assert train.lengths.tolist() == [3, 5, 3]  # "hé" is 3 UTF-8 bytes
    assert bytes(train.inputs[1].tolist()) == b"hello"
    assert bytes(train.inputs[2, :3].tolist()) == "hé".encode()
    assert train.targets.tolist() == [0, 1, 2]


def test_language_model_and_per_token_targets(save):
    path = save(
        {
            "train": {"ids": [[1, 2, 3, 4], [5, 6]], "tags": [[0, 1, 0, 1], [1, 1]]},
            "test": {"ids": [[7, 1, 2]], "tags": [[0, 0, 1]]},
        }
    )
    lm = tasks.build("hf", dict(path=path, input_column="ids", target_column=None))
    assert lm.spec.causal and lm.spec.head == "token" and lm.spec.num_outputs == 8
    train = lm.splits()["train"]
    assert train.inputs.tolist() == [[1, 2, 3], [5, 0, 0]]
    assert train.targets.tolist() == [[2, 3, 4], [6, IGNORE_INDEX, IGNORE_INDEX]]
    assert train.lengths.tolist() == [3, 1]
    tagger = tasks.build("hf", dict(path=path, input_column="ids", target_column="tags", max_len=3))
    assert not tagger.spec.causal and tagger.spec.num_outputs == 2
    split = tagger.splits()["train"]
    assert split.targets.tolist() == [[0, 1, 0], [1, 1, IGNORE_INDEX]]
    assert torch.equal(split.lengths, torch.tensor([3, 2]))


def test_unloadable_dataset_is_a_clear_error(save, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="could not load the dataset"):
        tasks.build("hf", dict(path=str(tmp_path / "empty"))).splits()


def test_missing_splits_and_columns_are_errors(save):
    path = save({"train": {"text": ["a"], "label": [0]}, "test": {"text": ["b"], "label": [1]}})
    with pytest.raises(ValueError, match="has no split 'validation'"):
        tasks.build("hf", dict(path=path, valid_split="validation")).splits()
    with pytest.raises(ValueError, match="has no column 'sentence'"):
        tasks.build("hf", dict(path=path, input_column="sentence")).splits()
    bad = save(
        {"train": {"text": ["a"], "label": [-1]}, "test": {"text": ["b"], "label": [1]}}, "bad"
    )
    with pytest.raises(ValueError, match="train_targets has negative labels"):
        tasks.build("hf", dict(path=bad)).splits()
