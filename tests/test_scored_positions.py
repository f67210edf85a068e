"""The head and loss at scored positions only give the numbers of computing every position."""

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from globalconv import config as C
from globalconv import tasks
from globalconv.config import ModelConfig
from globalconv.models import EncoderDecoder, Transformer, build_model
from globalconv.tasks import IGNORE_INDEX
from globalconv.train import scoring, train

MQAR = ["task.name=mqar", "task.params.num_train=256", "task.params.num_test=96"]
TINY = ["model.d_model=16", "model.n_layers=1", "train.batch_size=32", "train.threads=1"]


def test_scored_positions_finds_the_scored_targets_or_none():
    targets = torch.tensor([[IGNORE_INDEX, 3, IGNORE_INDEX], [1, IGNORE_INDEX, IGNORE_INDEX]])
    assert scoring.scored_positions(targets).tolist() == [1, 3]
    assert scoring.scored_positions(torch.ones(2, 3, dtype=torch.long)) is None  # all scored
    assert scoring.scored_positions(torch.tensor([0, 1])) is None  # one label per sequence


@pytest.mark.parametrize("mixer", ["attention", "global_conv", "hyena"])
def test_selected_head_equals_the_full_head_in_value_and_gradient(mixer):
    task = tasks.build("mqar", {"num_train": 64, "num_test": 8})
    torch.manual_seed(0)
    model = build_model(ModelConfig(mixer=mixer, d_model=16, n_layers=2, dropout=0.0), task.spec)
    inputs, targets = task.splits()["train"].batch(torch.arange(16))
    positions = scoring.scored_positions(targets)
    assert positions is not None and len(positions) < targets.numel()

    def loss_and_grads(**kwargs):
        model.zero_grad()
        logits = model(**inputs, **kwargs)
        flat = targets.reshape(-1)
        flat = flat if not kwargs else flat[positions]
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), flat, reduction="sum")
        loss.backward()
        return (
            loss.detach(),
            logits.detach(),
            {n: p.grad.clone() for n, p in model.named_parameters()},
        )

    full_loss, full_logits, full_grads = loss_and_grads()
    loss, logits, grads = loss_and_grads(positions=positions)
    torch.testing.assert_close(logits, full_logits.reshape(-1, logits.shape[-1])[positions])
    torch.testing.assert_close(loss, full_loss)
    for name, grad in grads.items():
        torch.testing.assert_close(grad, full_grads[name], rtol=1e-5, atol=1e-6, msg=name)


def test_sequence_head_refuses_positions():
    model = Transformer(ModelConfig(d_model=8, n_layers=1), max_len=4, num_outputs=2, vocab_size=5)
    with pytest.raises(ValueError, match="sequence head"):
        model(torch.zeros(2, 4, dtype=torch.long), positions=torch.tensor([0]))


def test_encoder_decoder_selects_decoder_positions():
    torch.manual_seed(0)
    model = EncoderDecoder(ModelConfig(d_model=8, n_layers=1, dropout=0.0), max_len=6,
                           num_outputs=5, vocab_size=5)  # fmt: skip
    src, tgt = torch.randint(0, 5, (2, 6)), torch.randint(0, 5, (2, 4))
    full = model(src, decoder_inputs=tgt).reshape(-1, 5)
    positions = torch.tensor([0, 5, 7])
    torch.testing.assert_close(model(src, decoder_inputs=tgt, positions=positions), full[positions])


def test_training_and_evaluation_match_computing_every_position(tmp_path, monkeypatch):
    overrides = [*MQAR, *TINY, "train.steps=4", "model.dropout=0"]
    selected = train(C.load(None, overrides), tmp_path / "selected", progress=False)
    monkeypatch.setattr(scoring, "scored_positions", lambda targets: None)
    every = train(C.load(None, overrides), tmp_path / "every", progress=False)
    assert selected.final_train_loss == pytest.approx(every.final_train_loss, rel=1e-6)
    assert selected.test_loss == pytest.approx(every.test_loss, rel=1e-6)
    assert selected.test_accuracy == every.test_accuracy
    a = load_file(str(tmp_path / "selected" / "model.safetensors"))
    b = load_file(str(tmp_path / "every" / "model.safetensors"))
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6, msg=name)
