import pytest
import torch

from globalconv import mixers, ops
from globalconv.analysis import flops
from globalconv.config import ModelConfig
from globalconv.models import Transformer


def test_fft_ops_are_counted_with_the_convention():
    x = torch.randn(2, 128, 3)
    counted = flops.measure_flops(lambda: torch.fft.irfft(torch.fft.rfft(x, dim=1), n=128, dim=1))
    assert counted == pytest.approx(2 * 2.5 * 128 * 7 * 2 * 3)


@pytest.mark.parametrize("name", ["attention", "global_conv"])
@pytest.mark.parametrize("L", [64, 1024])
def test_analytic_and_measured_mixer_flops_agree(name, L):
    """Within 15%: the counter misses element-wise work (complex product, softmax, skip)."""
    mixer = mixers.build(name, d_model=32, max_len=L)
    measured = flops.measure_forward_flops(mixer, torch.randn(1, L, 32))
    assert measured == pytest.approx(mixer.flops(L), rel=0.15)


@pytest.mark.parametrize("name", ["attention", "global_conv"])
def test_analytic_and_measured_model_flops_agree(name):
    model = Transformer(
        ModelConfig(mixer=name, d_model=32), max_len=128, num_outputs=4, vocab_size=9
    )
    measured = flops.measure_forward_flops(model, torch.randint(0, 9, (1, 128)))
    assert measured == pytest.approx(model.flops(128), rel=0.1)


def test_direct_path_is_counted_as_the_seed_says():
    mixer = mixers.build("global_conv", d_model=8, max_len=40, backend="direct", skip=False)
    measured = flops.measure_forward_flops(mixer, torch.randn(1, 40, 8))
    assert measured == 2 * 40 * 40 * 8 == ops.flops("circular", 40, 8, "direct")


def test_crossovers():
    D = 256
    L = flops.crossover_length("fft_conv", "direct_conv", D)
    costs = flops.operator_costs(L, D)
    before = flops.operator_costs(L - 1, D)
    assert costs["fft_conv"] < costs["direct_conv"] and before["fft_conv"] >= before["direct_conv"]
    for longer in (2 * L, 64 * L):
        c = flops.operator_costs(longer, D)
        assert c["fft_conv"] < c["direct_conv"] < c["attention_mixing"]
