"""ListOps: the evaluator, the generator against it, lengths, the cache."""

import pytest
import torch

from globalconv import tasks
from globalconv.tasks import listops

SMALL = dict(
    num_train=400, num_valid=50, num_test=100, min_len=32, max_len=128, max_depth=6, max_args=6
)


def ids(text: str) -> list[int]:
    names = [str(d) for d in range(10)] + list(listops.OPERATORS) + ["]"]
    return [1 + names.index(word) for word in text.split()]


@pytest.mark.parametrize(
    "expression, value",
    [
        ("[MAX 2 9 [MIN 4 7 ] 0 ]", 9),
        ("[MIN 4 [MAX 7 8 ] 5 ]", 4),
        ("[SM 9 8 7 ]", 4),  # 24 mod 10
        ("[MED 1 9 4 ]", 4),
        ("[MED 1 4 9 8 ]", 6),  # floor of the mean of 4 and 8, as LRA's int(np.median)
        ("[MAX 4 3 [MIN 2 3 ] 1 0 [MED 1 5 8 9 2 ] ]", 5),
    ],
)
def test_evaluator_on_hand_written_expressions(expression, value):
    assert listops.evaluate(ids(expression)) == value
    assert listops.to_text(ids(expression)) == expression


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    task = tasks.build("listops", dict(SMALL, cache_dir=str(cache)))
    return task, task.splits(), cache


def test_generated_labels_match_the_evaluator(small):
    _, splits, _ = small
    for split in splits.values():
        for x, n, y in zip(split.inputs, split.lengths, split.targets, strict=True):
            assert listops.evaluate(x[:n].tolist()) == int(y)


def test_lengths_depth_and_layout(small):
    task, splits, _ = small
    assert task.spec.max_len == 128 and task.spec.num_outputs == 10 and task.spec.head == "sequence"
    train = splits["train"]
    assert train.inputs.shape[1] == 128
    assert int(train.lengths.min()) >= 32 and int(train.lengths.max()) <= 128
    rows = torch.arange(len(train))
    assert (train.inputs[:, 0] >= listops.OPERATOR).all()  # the root is an operator
    assert (train.inputs[rows, train.lengths - 1] == listops.CLOSE).all()
    pad = torch.arange(128)[None, :] >= train.lengths[:, None]
    assert (train.inputs[pad] == 0).all() and (train.inputs[~pad] != 0).all()
    # operator nesting never exceeds max_depth - 1 (digits sit at depth max_depth at most)
    opens = (train.inputs >= listops.OPERATOR) & (train.inputs < listops.CLOSE)
    nesting = opens.long().cumsum(1) - (train.inputs == listops.CLOSE).long().cumsum(1)
    assert int(nesting.max()) <= SMALL["max_depth"] - 1
    assert set(splits["train"].targets.tolist()) == set(range(10))


def test_the_cache_is_keyed_by_parameters_and_reused(small, monkeypatch):
    task, splits, cache = small
    files = list(cache.iterdir())
    assert [f.name for f in files] == [task.cache_path().name]  # no temporary files left
    monkeypatch.setattr(listops, "generate", lambda *a: pytest.fail("regenerated"))
    again = tasks.build("listops", dict(SMALL, cache_dir=str(cache))).splits()
    for name in splits:
        assert torch.equal(again[name].inputs, splits[name].inputs)
        assert torch.equal(again[name].targets, splits[name].targets)
    other = tasks.build("listops", dict(SMALL, cache_dir=str(cache), seed=3))
    assert other.cache_path() != task.cache_path()


def test_generation_is_deterministic_without_the_cache(small, tmp_path):
    _, splits, _ = small
    fresh = tasks.build("listops", dict(SMALL, cache_dir=str(tmp_path))).splits()
    assert torch.equal(fresh["test"].inputs, splits["test"].inputs)
    assert torch.equal(fresh["train"].lengths, splits["train"].lengths)


def test_unreachable_lengths_are_errors():
    with pytest.raises(ValueError, match="no expression has more than 8 tokens"):
        tasks.build("listops", dict(min_len=50, max_len=60, max_depth=2, max_args=6))
    with pytest.raises(ValueError, match="min_len=70 exceeds max_len=60"):
        tasks.build("listops", dict(min_len=70, max_len=60))
