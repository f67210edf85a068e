"""The MAD tasks: each solved exactly by a hand-written rule scored by the trainer's own
evaluation, their layouts as MAD defines them, their floors, and memorization's shared map."""

import numpy as np
import pytest
import torch
from torch import nn

from globalconv import tasks
from globalconv.config import ModelConfig
from globalconv.models import AutoEncoder, build_model
from globalconv.tasks import IGNORE_INDEX, Split
from globalconv.tasks.common import _row_keys
from globalconv.tasks.mad_fuzzy_recall import random_context_motif_floor
from globalconv.tasks.mad_recall import random_context_value_floor
from globalconv.train.scoring import evaluate

FEW = dict(num_train=100)  # only the test split matters to a solver; keep training small


class Solver(nn.Module):
    """Logits from a rule that reads a sequence left to right: rule(row) -> one prediction
    per position, each made from the tokens up to that position."""

    def __init__(self, rule, num_outputs):
        super().__init__()
        self.rule, self.num_outputs = rule, num_outputs

    def forward(self, inputs, lengths=None, positions=None):
        picks = torch.tensor([self.rule(row) for row in inputs.tolist()])  # (B, L)
        logits = nn.functional.one_hot(picks, self.num_outputs).float() * 10  # (B, L, V)
        # the trainer asks for the scored positions only (flat indices into B*L), as our models do
        return logits if positions is None else logits.reshape(-1, self.num_outputs)[positions]


def score(task, rule, split="test"):
    spec = task.spec
    data = task.splits()[split]
    return evaluate(Solver(rule, spec.num_outputs), data, spec, 256, "cpu")["accuracy"]


def recall_rule(S):
    num_keys = S // 2  # keys [0, S/2), values [S/2, S), noise from S on

    def rule(row):
        value_of, out, key = {}, [], None
        for token in row:
            if token < num_keys:  # a key: answer its value if it was shown
                key = token
                out.append(value_of.get(token, 0))
                continue
            if key is not None and token < S:
                value_of.setdefault(key, token)
            key = None  # a value or noise ends the pair
            out.append(0)
        return out

    return rule


def fuzzy_rule(num_key_tokens, pad):
    def rule(row):
        value_of, out, key, value = {}, [], [], []
        for token in row:
            if token < num_key_tokens:
                if value:  # a new key begins: the previous pair is complete
                    value_of.setdefault(tuple(key), tuple(value))
                    key, value = [], []
                key.append(token)
            elif token != pad:
                value.append(token)
            known = value_of.get(tuple(key), ())
            out.append(known[len(value)] if len(value) < len(known) else 0)
        return out

    return rule


def selective_copy_rule(vocab_size):
    blank, copy = vocab_size - 2, vocab_size - 1

    def rule(row):
        data, out, answered = [], [], None
        for token in row:
            if token == copy:
                answered = 0
            elif answered is None and token != blank:
                data.append(token)
            if answered is not None and token == blank:
                out.append(data[answered] if answered < len(data) else 0)
                answered += 1
            else:
                out.append(0)
        return out

    return rule


@pytest.mark.parametrize(
    "name, params",
    [
        ("mad_recall", FEW),  # MAD's defaults
        ("mad_noisy_recall", FEW),
        ("mad_recall", dict(FEW, vocab_size=64, seq_len=256, num_test=300)),
        ("mad_noisy_recall", dict(FEW, vocab_size=48, frac_noise=0.8, num_test=300)),
    ],
)
def test_recall_solver_scores_every_query(name, params):
    task = tasks.build(name, params)
    S = task.params.vocab_size - task.params.noise_vocab_size
    assert score(task, recall_rule(S)) == 1.0


@pytest.mark.parametrize("params", [FEW, dict(FEW, vocab_size=32, seq_len=256, num_test=300)])
def test_fuzzy_recall_solver_scores_every_value_token(params):
    task = tasks.build("mad_fuzzy_recall", params)
    S = task.params.vocab_size - 1
    assert score(task, fuzzy_rule(S // 2, S)) == 1.0


@pytest.mark.parametrize(
    "params", [FEW, dict(FEW, vocab_size=32, seq_len=512, num_tokens=64, num_test=300)]
)
def test_mad_selective_copy_solver(params):
    task = tasks.build("mad_selective_copy", params)
    assert score(task, selective_copy_rule(task.params.vocab_size)) == 1.0


def test_compression_solver_through_one_position():
    task = tasks.build("mad_compression", FEW)

    class Bottleneck(nn.Module):  # keeps only what the last position holds: here, everything
        def forward(self, inputs, lengths=None):
            code = inputs  # (B, L): what a wide enough last position can hold
            return nn.functional.one_hot(code, task.spec.num_outputs).float() * 10

    data = task.splits()["test"]
    assert evaluate(Bottleneck(), data, task.spec, 256, "cpu")["accuracy"] == 1.0
    assert torch.equal(data.targets, data.inputs)
    assert (data.inputs[:, -1] == task.params.vocab_size - 1).all()
    assert int(data.inputs[:, :-1].max()) < task.params.vocab_size - 1


def shown_facts(split):
    """{key: value} as a memorization split shows them (keys at even, values at odd places)."""
    keys = split.inputs[:, 0::2].flatten().tolist()
    return dict(zip(keys, split.targets[:, 1::2].flatten().tolist(), strict=True))


def test_memorization_solver_learns_the_map_from_training_only():
    task = tasks.build("mad_memorization")  # MAD's defaults: 256 examples, 127 facts
    splits = task.splits()
    train = splits["train"]
    facts = shown_facts(train)
    assert len(facts) == 127

    def rule(row):
        return [facts.get(row[t - 1], 0) if t % 2 else 0 for t in range(len(row))]

    assert score(task, rule) == 1.0


# -- layouts


def test_recall_layout_and_training_targets():
    task = tasks.build("mad_noisy_recall", dict(FEW, num_valid=50))
    splits = task.splits()
    S, K = 16, 8
    x, y = splits["test"].inputs, splits["test"].targets
    assert x.shape == (1280, 127) and task.spec.max_len == 127
    scored = y != IGNORE_INDEX
    assert (x[scored] < K).all() and ((y[scored] >= K) & (y[scored] < S)).all()
    assert scored[:, -1].all()  # the probe at the end
    valid = splits["valid"].targets  # scored like test: values at queries only
    assert ((valid == IGNORE_INDEX) | ((valid >= K) & (valid < S))).all()
    train = splits["train"]  # a language model: the next token everywhere
    full = tasks.build("mad_noisy_recall", dict(FEW, num_test=1)).splits()["train"]
    assert (train.targets != IGNORE_INDEX).all()
    assert torch.equal(full.targets[:, :-1], full.inputs[:, 1:])
    pairs = x[:, 0::2]  # noise takes whole pair slots, about frac_noise of them
    share = (pairs >= S).float().mean()
    assert 0.15 < share < 0.25


def test_fuzzy_recall_keys_are_full_size_where_scored_and_mixed_in_training():
    task = tasks.build("mad_fuzzy_recall", dict(FEW, num_test=200))
    splits = task.splits()

    def key_run_sizes(split):
        sizes = []
        for row in split.inputs.tolist():
            run = 0
            for token in row + [15]:
                if token < 7:
                    run += 1
                elif run:
                    sizes.append(run)
                    run = 0
        return set(sizes[1:])  # the first key may be cut by the shift

    assert key_run_sizes(splits["test"]) == {3}
    assert key_run_sizes(splits["train"]) == {1, 2, 3}
    assert splits["test"].inputs.shape[1] == 128 == task.spec.max_len
    assert (splits["test"].targets != IGNORE_INDEX).any(dim=1).all()


def test_mad_selective_copy_layout():
    p = dict(FEW, vocab_size=10, seq_len=40, num_tokens=5)
    x = tasks.build("mad_selective_copy", p).splits()["test"].inputs
    blank, copy = 8, 9
    assert (x[:, 34] == copy).all() and (x[:, 35:] == blank).all()
    assert (x[:, 33] != blank).all()  # MAD: blanks go before data tokens, never after the last
    assert ((x[:, :34] != blank).sum(1) == 5).all()


def test_autoencoder_reads_only_the_last_position():
    task = tasks.build("mad_compression", dict(FEW, seq_len=12, vocab_size=6))
    model = build_model(ModelConfig(d_model=16, n_layers=1, dropout=0.0), task.spec)
    assert isinstance(model, AutoEncoder)
    torch.manual_seed(0)
    features = torch.randn(2, 12, 16)
    model.features = lambda inputs, lengths=None: features
    ids = torch.zeros(2, 12, dtype=torch.long)
    out = model(ids)
    assert out.shape == (2, 12, 6)
    features[:, :-1] += 1.0  # anything but the last position: no effect
    torch.testing.assert_close(model(ids), out)
    features[:, -1] += torch.randn(16)  # not a constant: the decoder's first LayerNorm drops it
    assert not torch.allclose(model(ids), out)
    short = model(ids, lengths=torch.tensor([12, 5]))  # a shorter sequence's last true position
    torch.testing.assert_close(short[0], model(ids)[0])
    assert not torch.allclose(short[1], model(ids)[1])


# -- floors


def test_recall_floor_is_a_random_value_from_the_context():
    split = Split(torch.tensor([[0, 2, 1, 3, 0, 2]]), torch.tensor([[-100] * 4 + [2, -100]]))
    assert random_context_value_floor(split, range(2, 4)) == pytest.approx(1 / 2)
    task = tasks.build("mad_recall", FEW)  # 8 values; early queries have seen fewer of them
    floor = task.baseline(task.splits())
    assert 1 / 8 < floor.value < 0.3 and "random one" in floor.what


def test_fuzzy_floor_is_a_random_value_motif_from_the_context():
    x = torch.tensor([[0, 3, 4, 1, 5, 0, 3, 4]])
    y = torch.tensor([[-100] * 5 + [3, 4, -100]])
    assert random_context_motif_floor(Split(x, y), range(3, 6)) == pytest.approx(1 / 2)
    task = tasks.build("mad_fuzzy_recall", dict(FEW, num_test=200))
    assert 0.0 < task.baseline(task.splits()).value < 0.5


def test_memorization_floor_is_the_majority_value():
    task = tasks.build("mad_memorization")
    splits = task.splits()
    train = splits["train"].targets[:, 1::2].flatten()
    majority = int(torch.bincount(train).argmax())
    test = splits["test"].targets[:, 1::2].flatten()
    floor = task.baseline(splits)
    assert floor.value == pytest.approx(float((test == majority).double().mean()))
    assert floor.value < 0.05


# -- memorization: one map, shared by every split by design


def test_memorization_map_is_shared_across_splits_and_follows_the_seed():
    splits = tasks.build("mad_memorization", dict(num_valid=100)).splits()
    train, test = shown_facts(splits["train"]), shown_facts(splits["test"])
    assert all(train[k] == v for k, v in test.items() if k in train)  # one map
    assert len(set(train.values())) == len(train)  # distinct values
    other = shown_facts(tasks.build("mad_memorization", dict(seed=1)).splits()["train"])
    assert other != train


def test_memorization_keeps_training_sequences_that_repeat_test_ones():
    # one key per sequence: 127 possible sequences, all in test; they stay in training
    splits = tasks.build("mad_memorization", dict(seq_len=2, num_train=500)).splits()
    assert len(splits["train"]) == 500
    assert set(_row_keys(splits["test"])) & set(_row_keys(splits["train"]))


@pytest.mark.parametrize(
    "name, params, message",
    [
        ("mad_recall", dict(seq_len=127), "seq_len must be even"),
        ("mad_recall", dict(vocab_size=17, noise_vocab_size=16), "raise vocab_size"),
        ("mad_recall", dict(frac_noise=0.5), "needs noise_vocab_size > 0"),
        ("mad_fuzzy_recall", dict(vocab_size=6), "too few for motifs"),
        ("mad_fuzzy_recall", dict(seq_len=10), "at least 12"),
        ("mad_selective_copy", dict(seq_len=33, num_tokens=16), "must exceed"),
    ],
)
def test_bad_parameters_are_clear_errors(name, params, message):
    with pytest.raises(ValueError, match=message):
        tasks.build(name, params)


def test_default_generation_is_deterministic_numpy():
    a = tasks.build("mad_selective_copy", dict(FEW, num_test=5)).splits()["test"].inputs
    b = tasks.build("mad_selective_copy", dict(FEW, num_test=5)).splits()["test"].inputs
    assert torch.equal(a, b) and np.ptp(a.numpy()) > 0


MAD = ["mad_recall", "mad_noisy_recall", "mad_fuzzy_recall", "mad_selective_copy"]
MAD += ["mad_compression", "mad_memorization"]


@pytest.mark.parametrize("name", MAD)
def test_own_validation_split_leaves_training_at_mads_size_and_blocks_carving(name):
    from globalconv.tasks.common import carve_validation

    small = dict(num_train=50, num_test=20)
    splits = tasks.build(name, dict(small, num_valid=30)).splits()
    assert len(splits["valid"]) == 30 and len(splits["train"]) == small["num_train"]
    without = tasks.build(name, dict(small, num_valid=0)).splits()
    assert torch.equal(without["train"].inputs, splits["train"].inputs)  # its own stream
    assert carve_validation(splits, 0.2, seed=0)["train"] is splits["train"]
    assert tasks.get(name).Params().num_valid == 1_280


def test_recall_validation_is_scored_like_test_not_like_training():
    splits = tasks.build("mad_fuzzy_recall", dict(num_train=20, num_valid=40, num_test=40)).splits()
    for name in ("valid", "test"):
        assert (splits[name].targets == IGNORE_INDEX).float().mean() > 0.5
    assert (splits["train"].targets != IGNORE_INDEX).all()
