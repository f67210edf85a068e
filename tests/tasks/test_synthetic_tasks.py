"""Generated tasks: determinism, shapes, label ranges, known solvers, no train/test leaks."""

import math

import pytest
import torch

from globalconv import tasks
from globalconv.tasks import IGNORE_INDEX, Split
from globalconv.tasks.common import _row_keys

SMALL = dict(num_train=300, num_valid=50, num_test=100)
CASES = {
    "mqar": dict(SMALL, vocab_size=64, seq_len=32, num_kv_pairs=4),
    "induction": dict(SMALL, num_symbols=8, seq_len=24),
    "selective_copy": dict(SMALL, context_len=24, num_tokens=5, num_symbols=6),
    "copy": dict(SMALL, num_symbols=6, min_len=3, max_len=9),
    "copy-decoder": dict(SMALL, num_symbols=6, min_len=3, max_len=9, architecture="decoder"),
    "reverse": dict(SMALL, num_symbols=6, min_len=3, max_len=9),
    "reverse-decoder": dict(SMALL, num_symbols=6, min_len=3, max_len=9, architecture="decoder"),
    "parity": dict(SMALL, seq_len=20),
    "parity-varlen": dict(SMALL, seq_len=20, min_len=5),
    "majority": dict(SMALL, seq_len=21),
    "majority-varlen": dict(SMALL, seq_len=20, min_len=4),
}


def build(case, **overrides):
    return tasks.build(case.split("-")[0], {**CASES[case], **overrides})


@pytest.fixture(scope="module", params=sorted(CASES))
def made(request):
    task = build(request.param)
    return request.param, task, task.splits()


def test_same_seed_same_data_other_seed_other_data(made):
    case, _, splits = made
    again = build(case).splits()
    other = build(case, seed=1).splits()
    for name, split in splits.items():
        torch.testing.assert_close(again[name].inputs, split.inputs, rtol=0, atol=0)
        torch.testing.assert_close(again[name].targets, split.targets, rtol=0, atol=0)
    assert not torch.equal(other["train"].inputs, splits["train"].inputs)


def test_shapes_and_ranges_follow_the_spec(made):
    _, task, splits = made
    spec = task.spec
    assert set(splits) == {"train", "valid", "test"}
    assert len(splits["test"]) == 100 and len(splits["valid"]) == 50
    assert 0 < len(splits["train"]) <= 300
    for split in splits.values():
        x, y = split.inputs, split.targets
        assert x.dtype == torch.int64 and y.dtype == torch.int64
        assert x.shape[1] <= spec.max_len
        assert int(x.min()) >= 0 and int(x.max()) < spec.vocab_size
        scored = y != IGNORE_INDEX
        assert scored.any(dim=-1).all(), "every example scores at least one target"
        assert int(y[scored].min()) >= 0 and int(y[scored].max()) < spec.num_outputs
        if spec.head == "sequence":
            assert y.shape == (len(split),)
        elif spec.architecture == "encoder":
            assert y.shape == x.shape
        if split.lengths is not None:
            L = x.shape[1]
            assert int(split.lengths.min()) >= 1 and int(split.lengths.max()) <= L
            pad = torch.arange(L)[None, :] >= split.lengths[:, None]
            assert (x[pad] == 0).all()
            if y.dim() == 2 and y.shape == x.shape:
                assert (y[pad] == IGNORE_INDEX).all()


def test_training_examples_never_occur_in_held_out_splits(made):
    _, _, splits = made
    held_out = set(_row_keys(splits["valid"])) | set(_row_keys(splits["test"]))
    assert not held_out.intersection(_row_keys(splits["train"]))


def test_a_batch_feeds_the_model_the_task_builds(made):
    from globalconv.config import ModelConfig
    from globalconv.models import build_model

    _, task, splits = made
    model = build_model(ModelConfig(d_model=16, n_layers=1, dropout=0.0), task.spec)
    inputs, targets = splits["train"].batch(torch.arange(8))
    logits = model(**inputs)
    if task.spec.head == "sequence":
        assert logits.shape == (8, task.spec.num_outputs)
    else:
        assert logits.shape[:2] == targets.shape


def test_mqar_lookup_solver_is_exact_and_queries_follow_the_pairs():
    p = CASES["mqar"]
    split = tasks.build("mqar", p).splits()["test"]
    P = p["num_kv_pairs"]
    for x, y in zip(split.inputs.tolist(), split.targets.tolist(), strict=True):
        table = dict(zip(x[0 : 2 * P : 2], x[1 : 2 * P : 2], strict=True))
        assert len(table) == P  # distinct keys
        assert all(k < 32 <= v for k, v in table.items())  # keys low half, values high half
        queries = [t for t, target in enumerate(y) if target != IGNORE_INDEX]
        assert len(queries) == P and min(queries) >= 2 * P
        assert {x[t] for t in queries} == set(table)  # each key asked once
        assert all(table[x[t]] == y[t] for t in queries)


def test_mqar_gaps_follow_a_power_law():
    split = tasks.build("mqar", dict(CASES["mqar"], seq_len=128, num_test=400)).splits()["test"]
    where = (split.targets != IGNORE_INDEX).nonzero()[:, 1].float()
    gap = (where - 8) / 2  # slot index after the 4 pairs
    # a*g^(a-1) with a=0.01 puts most queries near the pairs; uniform slots would average ~28
    assert gap.median() < 12


def test_induction_solver():
    split = tasks.build("induction", CASES["induction"]).splits()["test"]
    trigger = CASES["induction"]["num_symbols"]
    for x, y in zip(split.inputs.tolist(), split.targets.tolist(), strict=True):
        assert x[-1] == trigger and x[:-1].count(trigger) == 1
        answer = x[x.index(trigger) + 1]
        assert y[-1] == answer and all(t == IGNORE_INDEX for t in y[:-1])


def test_selective_copy_solver():
    p = CASES["selective_copy"]
    split = tasks.build("selective_copy", p).splits()["test"]
    C = p["context_len"]
    for x, y in zip(split.inputs.tolist(), split.targets.tolist(), strict=True):
        data = [t for t in x[:C] if t != 0]
        assert y[C:] == data and len(data) == p["num_tokens"]
        assert all(t == IGNORE_INDEX for t in y[:C])


@pytest.mark.parametrize("name", ["copy", "reverse"])
def test_copy_and_reverse_solvers(name):
    order = (lambda s: s[::-1]) if name == "reverse" else (lambda s: s)
    encdec = tasks.build(name, CASES[name]).splits()["test"]
    for i in range(len(encdec)):
        n = int(encdec.lengths[i])
        source = encdec.inputs[i, :n].tolist()
        target = order(source) + [2]  # EOS
        assert encdec.targets[i, : n + 1].tolist() == target
        assert (encdec.targets[i, n + 1 :] == IGNORE_INDEX).all()
        assert encdec.extras["decoder_inputs"][i, : n + 1].tolist() == [1] + target[:-1]
        assert int(encdec.extras["decoder_lengths"][i]) == n + 1
    decoder = tasks.build(name, CASES[f"{name}-decoder"]).splits()["test"]
    for x, y, length in zip(decoder.inputs, decoder.targets, decoder.lengths, strict=True):
        n = (int(length) - 1) // 2
        source = x[:n].tolist()
        assert x[n] == 1 and x[n + 1 : 2 * n + 1].tolist() == order(source)
        assert y[n : 2 * n + 1].tolist() == order(source) + [2]
        assert (y[:n] == IGNORE_INDEX).all()


def test_parity_and_majority_rules():
    for case in ["parity-varlen", "majority", "majority-varlen"]:
        split = build(case).splits()["test"]
        n = split.lengths if split.lengths is not None else torch.full((len(split),), 21)
        ones = split.inputs.sum(1)
        expected = ones % 2 if case.startswith("parity") else (2 * ones > n).long()
        assert torch.equal(split.targets, expected), case
        assert 0.2 < split.targets.float().mean() < 0.8  # both classes occur


def test_small_spaces_drop_leaked_training_examples_or_refuse():
    splits = tasks.build("parity", dict(seq_len=5, num_train=200, num_test=20)).splits()
    assert len(splits["train"]) < 200  # 32 strings: many training strings were test strings
    assert not set(_row_keys(splits["test"])).intersection(_row_keys(splits["train"]))
    with pytest.raises(ValueError, match="too small"):
        tasks.build("parity", dict(seq_len=1, num_train=50, num_test=50)).splits()


def test_splits_are_independent_streams():
    a = tasks.build("mqar", dict(CASES["mqar"], num_test=100)).splits()["train"]
    b = tasks.build("mqar", dict(CASES["mqar"], num_test=200)).splits()["train"]
    assert torch.equal(a.inputs, b.inputs)


@pytest.mark.parametrize(
    "name, params, message",
    [
        ("mqar", dict(seq_len=33), "seq_len must be even"),
        ("mqar", dict(seq_len=16, num_kv_pairs=5), "needs seq_len >= 20"),
        ("mqar", dict(vocab_size=8, num_kv_pairs=4), "need vocab_size >= 10"),
        ("selective_copy", dict(context_len=4, num_tokens=5), "do not fit"),
        ("copy", dict(min_len=5, max_len=4), "task 'copy': min_len=5 exceeds max_len=4"),
        ("parity", dict(seq_len=4, min_len=5), "exceeds seq_len"),
        ("mqar", dict(num_pairs=3), "has no parameter 'num_pairs'"),
    ],
)
def test_bad_parameters_are_clear_errors(name, params, message):
    with pytest.raises(ValueError, match=message):
        tasks.build(name, params)


def test_every_task_reports_one_of_its_metrics():
    for name in tasks.available():
        if name in ("files", "hf"):  # need a data file; covered in their own tests
            continue
        task = tasks.build(name)
        assert task.spec.metric in type(task).metrics, name


# -- the trivial floor: what a verdict of "neither learned" is measured from


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_generated_task_states_a_floor_in_its_metric(case):
    task = build(case)
    floor = task.baseline(task.splits())
    assert floor.what
    assert 0.0 < floor.value < 1.0  # accuracy tasks: a floor, not a solution


def test_default_floor_is_the_majority_class_scored_on_test():
    task = build("parity")
    train = Split(torch.zeros(4, 3, dtype=torch.long), torch.tensor([1, 1, 1, 0]))
    test = Split(torch.zeros(5, 3, dtype=torch.long), torch.tensor([1, 0, 0, 0, 1]))
    floor = task.baseline({"train": train, "test": test})
    assert floor.value == pytest.approx(2 / 5) and floor.what == "majority class"


def test_default_floor_for_bits_is_the_smoothed_training_unigram():
    task = tasks.build("text", {"seq_len": 16, "max_bytes": 20_000})
    ignore = IGNORE_INDEX
    train = Split(torch.zeros(2, 3, dtype=torch.long), torch.tensor([[0, 0, 1], [0, ignore, 0]]))
    test = Split(torch.zeros(1, 2, dtype=torch.long), torch.tensor([[1, 0]]))
    floor = task.baseline({"train": train, "test": test})
    p0, p1 = (4 + 1) / (5 + 2), (1 + 1) / (5 + 2)  # counts 4 and 1, add-one over 2 symbols
    assert floor.value == pytest.approx(-(math.log2(p1) + math.log2(p0)) / 2)


def test_mqar_floor_is_a_random_value_from_the_context():
    task = build("mqar")
    assert task.baseline(task.splits()).value == pytest.approx(1 / CASES["mqar"]["num_kv_pairs"])
