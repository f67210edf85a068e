"""Every registered mixer honours the TokenMixer contract; a new mixer gets these by registering."""

import pytest
import torch

from globalconv import mixers

D, L = 16, 24


def build(name, causal=False, **opts):
    torch.manual_seed(0)
    return mixers.build(name, d_model=D, max_len=32, causal=causal, **opts).double()


def directions(name):
    cls = mixers.get(name)
    return [c for c, ok in [(False, cls.supports_bidirectional), (True, cls.supports_causal)] if ok]


CASES = [(n, c) for n in mixers.available() for c in directions(n)]


@pytest.mark.parametrize("name, causal", CASES)
def test_shape_finite_and_gradients_reach_every_parameter(name, causal):
    mixer = build(name, causal)
    x = torch.randn(3, L, D, dtype=torch.float64, requires_grad=True)
    y = mixer(x, torch.tensor([L, 7, 15]))
    assert y.shape == x.shape and torch.isfinite(y).all()
    y.square().sum().backward()
    for pname, p in mixer.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches {pname}"


@pytest.mark.parametrize("name, causal", CASES)
def test_padding_invariance(name, causal):
    mixer = build(name, causal).eval()
    x = torch.randn(2, L, D, dtype=torch.float64)
    lengths = torch.tensor([10, L])
    y = mixer(x, lengths)
    x2 = x.clone()
    x2[0, 10:] = 1e3 * torch.randn(L - 10, D, dtype=torch.float64)
    x2[1] = torch.randn(L, D, dtype=torch.float64)
    y2 = mixer(x2, lengths)
    torch.testing.assert_close(y[0], y2[0])
    assert (y2[0, 10:] == 0).all(), "outputs past the true length must be 0"
    alone = mixer(x[:1, :10])
    torch.testing.assert_close(y[0, :10], alone[0])


@pytest.mark.parametrize("name", [n for n, c in CASES if c])
def test_causal_variants_never_see_the_future(name):
    mixer = build(name, causal=True).eval()
    x = torch.randn(1, L, D, dtype=torch.float64, requires_grad=True)
    y = mixer(x)
    for t in [0, 5, L - 2]:
        (grad,) = torch.autograd.grad(y[0, t].sum(), x, retain_graph=True)
        assert (grad[0, t + 1 :].abs() < 1e-10).all(), f"{name}: output {t} sees the future"


@pytest.mark.parametrize("name, causal", CASES)
def test_deterministic_under_a_seed(name, causal):
    x = torch.randn(2, L, D, dtype=torch.float64)
    a, b = build(name, causal).eval(), build(name, causal).eval()
    torch.testing.assert_close(a(x), b(x))


@pytest.mark.parametrize("name, causal", CASES)
def test_flops_and_params_are_reported(name, causal):
    mixer = build(name, causal)
    assert mixer.num_params() == sum(p.numel() for p in mixer.parameters())
    assert mixer.flops(16) > 0 and mixer.flops(32) > mixer.flops(16)


@pytest.mark.parametrize("name", mixers.available())
def test_unknown_option_is_a_clear_error(name):
    with pytest.raises(ValueError, match=f"mixer '{name}' has no option not_an_option; allowed"):
        mixers.build(name, d_model=D, max_len=32, not_an_option=1)


@pytest.mark.parametrize("name", mixers.available())
def test_too_long_input_is_a_clear_error_unless_length_free(name):
    mixer = build(name)
    if mixer.length_free:
        assert mixer(torch.randn(1, 40, D, dtype=torch.float64)).shape == (1, 40, D)
        return
    with pytest.raises(ValueError, match="exceeds max_len=32"):
        mixer(torch.randn(1, 40, D, dtype=torch.float64))


def test_unknown_mixer_lists_available():
    with pytest.raises(ValueError, match="unknown mixer 'nope'; available: .*attention"):
        mixers.build("nope", d_model=8, max_len=8)


def test_attention_heads_must_divide_width():
    with pytest.raises(ValueError, match="not divisible by heads=3"):
        mixers.build("attention", d_model=16, max_len=8, heads=3)


def test_attention_flops_formula():
    m = mixers.build("attention", d_model=16, max_len=64, heads=4)
    assert m.flops(64) == 8 * 64 * 16 * 16 + 4 * 64 * 64 * 16 + 5 * 4 * 64 * 64


def test_global_conv_is_the_seed_operator():
    """At full length the mixer is y[t] = sum_s W[s] x[(t+s) mod L] + skip * x[t]."""
    m = build("global_conv")
    x = torch.randn(1, 32, D, dtype=torch.float64)
    want = torch.zeros_like(x)
    for t in range(32):
        idx = (t + torch.arange(32)) % 32
        want[0, t] = (m.kernel.weight * x[0, idx]).sum(0) + m.skip * x[0, t]
    torch.testing.assert_close(m(x), want)
    assert m.num_params() == 32 * D + D
