"""Hybrid layouts: model.layers chooses the mixer per layer."""

import pytest
import torch

from globalconv import config as C
from globalconv.config import ModelConfig
from globalconv.models import Transformer
from globalconv.models.transformer import resolved_positions


def test_layout_from_a_comma_list_sets_mixer_depth_and_per_mixer_options():
    cfg = C.load(
        None,
        [
            "model.layers=global_conv,global_conv,attention,global_conv",
            "model.mixer_options.attention.heads=8",
        ],
    ).model
    assert cfg.mixer == "hybrid" and cfg.n_layers == 4
    assert cfg.layer_mixers() == [
        ("global_conv", {}),
        ("global_conv", {}),
        ("attention", {"heads": 8}),
        ("global_conv", {}),
    ]
    assert resolved_positions(cfg) == "sinusoidal"  # a layer attends
    assert C.parse({"model": cfg.model_dump(mode="json")}).model == cfg  # saved configs reload


def test_per_layer_entries_carry_their_own_options():
    cfg = ModelConfig(
        layers=[{"mixer": "lightconv", "kernel_size": 3}, {"mixer": "lightconv", "kernel_size": 7}],
        mixer_options={"lightconv": {"heads": 2, "kernel_size": 31}},
    )
    assert cfg.layer_mixers() == [
        ("lightconv", {"heads": 2, "kernel_size": 3}),
        ("lightconv", {"heads": 2, "kernel_size": 7}),
    ]


def test_the_transformer_builds_each_layer_with_its_mixer():
    torch.manual_seed(0)
    cfg = ModelConfig(layers=["fnet", "attention", "hyena"], d_model=16, dropout=0.0)
    model = Transformer(cfg, max_len=20, num_outputs=3, vocab_size=7)
    assert [b.mixer.name for b in model.blocks] == ["fnet", "attention", "hyena"]
    x, lengths = torch.randint(0, 7, (2, 20)), torch.tensor([20, 11])
    assert model(x, lengths).shape == (2, 3)
    flops = sum(b.mixer.flops(20) + b.ffn.flops(20) for b in model.blocks) + 2 * 16 * 3
    assert model.flops(20) == flops


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["model.mixer=hybrid"], "mixer 'hybrid' needs a layout"),
        (["model.layers=global_conv,nope"], "layers: unknown mixer 'nope'"),
        (["model.layers=global_conv", "model.mixer=attention"], "set mixer to 'hybrid'"),
        (["model.layers=global_conv", "model.n_layers=3"], "set n_layers=1 or drop it"),
        (["model.layers=fnet", "model.mixer_options.attention.heads=2"], "got key 'attention'"),
        (["model.layers=[{kernel_size: 3}]"], "needs a 'mixer' key"),
        (["model.layers="], "layers is empty"),
    ],
)
def test_bad_layouts_are_config_errors(overrides, message):
    with pytest.raises(C.ConfigError, match=message):
        C.load(None, overrides)


def test_a_mixer_that_cannot_be_causal_fails_when_built_causal():
    cfg = ModelConfig(layers=["global_conv", "fnet"], d_model=16)
    with pytest.raises(ValueError, match="mixer 'fnet' cannot be causal"):
        Transformer(cfg, max_len=8, num_outputs=3, vocab_size=5, causal=True, head="token")
