import math

import pytest
import torch
from torch import nn

from globalconv.config import ModelConfig, TrainConfig
from globalconv.models import Transformer
from globalconv.train import get_optim_hints, lr_factor, parameter_groups, set_optim_hints
from globalconv.train.optim import build_optimizer, set_lr


def model(mixer="global_conv"):
    torch.manual_seed(0)
    cfg = ModelConfig(mixer=mixer, d_model=8, n_layers=1, positions="learned")
    return Transformer(cfg, max_len=12, num_outputs=3, vocab_size=5)


def groups_by_name(groups):
    return {g["name"]: set(g["names"]) for g in groups}


def test_decay_only_on_linear_matrices_by_default():
    groups = groups_by_name(parameter_groups(model(), 0.1))
    assert groups["decay"] == {
        "blocks.0.ffn.up.weight",
        "blocks.0.ffn.down.weight",
        "head.weight",
    }
    no_decay = groups["no_decay"]
    assert {"embed.weight", "pos_embed", "blocks.0.norms.0.weight", "head.bias"} <= no_decay
    # the global kernel: its own group, weight decay 0
    assert groups["kernel"] == {"blocks.0.mixer.kernel.weight"}
    by_name = {g["name"]: g for g in parameter_groups(model(), 0.1)}
    assert by_name["decay"]["weight_decay"] == 0.1
    assert by_name["no_decay"]["weight_decay"] == 0.0
    assert by_name["kernel"]["weight_decay"] == 0.0


def test_kernel_decay_when_asked():
    groups = {g["name"]: g for g in parameter_groups(model(), 0.1, kernel_weight_decay=0.5)}
    assert groups["kernel"]["weight_decay"] == 0.5


def test_hints_make_their_own_group_and_reach_the_optimiser():
    m = model()
    kernel = m.blocks[0].mixer.kernel.weight
    assert set_optim_hints(kernel, lr=1e-4, weight_decay=0.2) is kernel
    set_optim_hints(m.blocks[0].mixer.skip, lr_scale=0.5)
    assert get_optim_hints(kernel) == {"lr": 1e-4, "weight_decay": 0.2}
    opt = build_optimizer(m, TrainConfig(lr=1e-2, weight_decay=0.1))
    by_param = {id(p): g for g in opt.param_groups for p in g["params"]}
    assert by_param[id(kernel)]["lr"] == 1e-4 and by_param[id(kernel)]["weight_decay"] == 0.2
    skip = by_param[id(m.blocks[0].mixer.skip)]
    assert skip["lr"] == pytest.approx(5e-3) and skip["weight_decay"] == 0.0
    assert by_param[id(m.head.weight)]["lr"] == 1e-2
    # every parameter is in exactly one group
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(m.parameters()))
    set_lr(opt, 0.5)  # the schedule scales each group's own peak
    assert by_param[id(kernel)]["lr"] == pytest.approx(5e-5)
    assert by_param[id(m.head.weight)]["lr"] == pytest.approx(5e-3)


def test_hints_set_as_a_plain_attribute_are_honoured_and_checked():
    m = model()
    m.head.bias._optim = {"lr": 3e-4}
    groups = parameter_groups(m, 0.1, lr=1e-3)
    (hinted,) = [g for g in groups if "head.bias" in g["names"]]
    assert hinted["lr"] == 3e-4
    m.head.bias._optim = {"momentum": 0.9}
    with pytest.raises(ValueError, match=r"parameter head.bias: unknown optimiser hint"):
        parameter_groups(m, 0.1)
    with pytest.raises(ValueError, match="lr or lr_scale, not both"):
        set_optim_hints(nn.Parameter(torch.zeros(1)), lr=1.0, lr_scale=2.0)
    with pytest.raises(ValueError, match="must be a positive number"):
        set_optim_hints(nn.Parameter(torch.zeros(1)), lr=-1.0)


def test_frozen_parameters_are_left_out():
    m = model()
    m.embed.weight.requires_grad_(False)
    names = {n for g in parameter_groups(m, 0.1) for n in g["names"]}
    assert "embed.weight" not in names and "head.weight" in names


def factors(**kw):
    cfg = TrainConfig(**kw)
    return [lr_factor(s, cfg) for s in range(cfg.steps)]


def test_warmup_then_cosine_to_the_floor():
    f = factors(steps=110, warmup_steps=10, schedule="cosine", min_lr_ratio=0.1)
    assert f[:10] == pytest.approx([(s + 1) / 10 for s in range(10)])
    assert f[10] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(f[10:], f[11:], strict=False))  # non-increasing
    assert f[60] == pytest.approx(0.1 + 0.9 * 0.5)  # half way: mid between peak and floor
    assert f[-1] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 99 / 100)))


def test_constant_and_inverse_square_root():
    assert factors(steps=20, warmup_steps=4, schedule="constant")[4:] == [1.0] * 16
    f = factors(steps=400, warmup_steps=100, schedule="inverse_sqrt")
    assert f[99] == pytest.approx(1.0) and max(f) == pytest.approx(1.0)
    assert f[49] == pytest.approx(0.5)  # linear warmup
    assert f[399] == pytest.approx(0.5)  # sqrt(100 / 400): the paper's step^-0.5 decay


def test_groups_without_a_run_lr_leave_lr_to_the_optimiser():
    # callers that build AdamW(groups, lr=...) themselves keep their lr, hints excepted
    m = model()
    set_optim_hints(m.blocks[0].mixer.kernel.weight, lr=1e-4)
    opt = torch.optim.AdamW(parameter_groups(m, 0.1), lr=3e-3)
    by_param = {id(p): g for g in opt.param_groups for p in g["params"]}
    assert by_param[id(m.head.weight)]["lr"] == 3e-3
    assert by_param[id(m.blocks[0].mixer.kernel.weight)]["lr"] == 1e-4
    set_optim_hints(m.head.bias, lr_scale=2.0)
    with pytest.raises(ValueError, match="lr_scale hint: pass lr="):
        parameter_groups(m, 0.1)
