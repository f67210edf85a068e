"""Kernel parameterisations: shapes, gradients, lengths, regularisers, equivalences, hints."""

import math

import pytest
import torch
import torch.nn.functional as F

from globalconv import kernels, mixers, ops
from globalconv.config import ModelConfig
from globalconv.core.errors import SequenceTooLongError
from globalconv.kernels.frequency import FrequencyKernel
from globalconv.models import Transformer
from globalconv.train import parameter_groups

D, K = 6, 32
KINDS = kernels.available()
MODES = ["circular", "causal", "full"]


def build(kind, mode="circular", **opts):
    torch.manual_seed(0)
    return kernels.build(kind, d_model=D, max_len=K, mode=mode, **opts).double()


def rows(mode, n):
    return 2 * n - 1 if mode == "full" else n


def test_registry_lists_the_four_kinds_and_rejects_unknowns():
    assert set(KINDS) >= {"explicit", "frequency", "multiscale", "implicit"}
    with pytest.raises(ValueError, match="unknown kernel 'nope'; available: explicit"):
        kernels.build("nope", d_model=D, max_len=K)
    with pytest.raises(ValueError, match="kernel 'explicit' has no option bands; allowed: squash"):
        kernels.build("explicit", d_model=D, max_len=K, bands=3)
    for kind in KINDS:
        assert {"resample", "lr", "weight_decay"} <= set(kernels.options(kind))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
def test_shapes_at_several_lengths_and_gradients_flow(kind, mode):
    kernel = build(kind, mode, resample=True)
    for n in [1, 5, K, 2 * K, 4 * K + 3]:
        k = kernel(n)
        assert k.shape == (rows(mode, n), D) and torch.isfinite(k).all(), (n, k.shape)
    for n in [K, 3 * K]:
        kernel.zero_grad()
        kernel(n).square().sum().backward()
        for name, p in kernel.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, f"{name} gets no gradient"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
def test_without_resampling_shorter_is_a_crop_and_longer_an_error(kind, mode):
    kernel = build(kind, mode).eval()
    full = kernel(K)
    for n in [1, 9, K - 1]:
        want = full[K - n : K - 1 + n] if mode == "full" else full[:n]
        torch.testing.assert_close(kernel(n), want)
    if kernel.length_free:  # evaluated at the new positions: still a crop of the longer kernel
        longer = kernel(3 * K)
        torch.testing.assert_close(
            longer[2 * K : 4 * K - 1] if mode == "full" else longer[:K], full
        )
    else:
        with pytest.raises(SequenceTooLongError, match=f"exceeds max_len={K}; set resample=True"):
            kernel(K + 1)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", ["explicit", "implicit"])
@pytest.mark.parametrize("ragged", [False, True])
def test_skip_on_the_offset_zero_tap_equals_adding_it_to_the_output(kind, mode, ragged):
    """convolve(..., skip=w) folds w into the kernel; it must be conv + w * x (0 past the end)."""
    kernel = build(kind, mode, resample=True)
    torch.manual_seed(1)
    B, L = 3, 20
    x = torch.randn(B, L, D, dtype=torch.float64, requires_grad=True)
    w = torch.randn(D, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([20, 7, 13]) if ragged else None
    keep = 1.0 if lengths is None else (torch.arange(L)[None, :] < lengths[:, None])[..., None]
    grad = torch.randn(B, L, D, dtype=torch.float64)

    def outputs(folded):
        x.grad = w.grad = None
        kernel.zero_grad()
        if folded:
            y = kernels.convolve(kernel, x, lengths=lengths, skip=w)
        else:
            y = kernels.convolve(kernel, x, lengths=lengths) + w * x * keep
        y.backward(grad)
        first = next(kernel.parameters()).grad.clone()
        return y.detach(), x.grad.clone(), w.grad.clone(), first

    for got, want in zip(outputs(True), outputs(False), strict=True):
        torch.testing.assert_close(got, want)
    k = torch.randn(rows(mode, 5), D)
    centre = 4 if mode == "full" else 0
    folded = kernels.with_identity(k, torch.ones(D), mode)
    torch.testing.assert_close(folded[centre], k[centre] + 1)
    torch.testing.assert_close(folded[centre + 1 :], k[centre + 1 :])
    torch.testing.assert_close(folded[:centre], k[:centre])


def test_explicit_equals_frequency_in_circular_mode():
    """Same function class: H = rfft(W) and W = irfft(H) convert one into the other."""
    torch.manual_seed(1)
    x = torch.randn(4, K, D, dtype=torch.float64)
    lengths = torch.tensor([K, 17, 1, 30])
    conv = mixers.build("global_conv", d_model=D, max_len=K, kernel="explicit").double()
    freq = mixers.build("global_conv", d_model=D, max_len=K, kernel="frequency").double()
    # explicit -> frequency
    converted = FrequencyKernel.from_taps(conv.kernel.weight).double()
    freq.kernel.weight.data.copy_(converted.weight)
    for backend in ["direct", "fft"]:
        conv.backend = freq.backend = backend
        torch.testing.assert_close(freq(x, lengths), conv(x, lengths))
        torch.testing.assert_close(freq(x), conv(x))
    # frequency -> explicit
    torch.nn.init.normal_(freq.kernel.weight)
    conv.kernel.weight.data.copy_(freq.kernel(K).detach())
    torch.testing.assert_close(freq(x, lengths), conv(x, lengths))
    # and the frequency kernel is GFNet's filter: y = irfft(rfft(x) * conj(H))
    H = freq.kernel.filter().detach()
    gfnet = torch.fft.irfft(torch.fft.rfft(x, dim=1) * H.conj(), n=K, dim=1)
    torch.testing.assert_close(ops.global_conv(x, freq.kernel(K), mode="circular"), gfnet)


def test_frequency_from_taps_round_trips_in_every_mode():
    for mode in MODES:
        taps = torch.randn(rows(mode, K), D, dtype=torch.float64)
        torch.testing.assert_close(FrequencyKernel.from_taps(taps, mode).double()(K), taps)


def test_squash_zeroes_small_taps_and_shrinks_the_rest():
    kernel = build("explicit", squash=0.1)
    w = torch.linspace(-0.3, 0.3, K, dtype=torch.float64)[:, None].repeat(1, D)
    kernel.weight.data.copy_(w)
    k = kernel(K)
    small = w.abs() <= 0.1
    assert small.any() and (k[small] == 0).all()
    torch.testing.assert_close(k[~small], w[~small] - 0.1 * w[~small].sign())


def test_kernel_dropout_only_in_training():
    kernel = build("explicit", dropout=0.5)
    kernel.train()
    k = kernel(K)
    dropped = k == 0
    assert 0.2 < dropped.double().mean() < 0.8
    torch.testing.assert_close(k[~dropped], 2 * kernel.weight[~dropped])
    kernel.eval()
    torch.testing.assert_close(kernel(K), kernel.weight)


def test_smoothing_is_a_moving_average_over_taps_inside_the_window():
    kernel = build("explicit", smooth=3)
    w = torch.zeros(K, D, dtype=torch.float64)
    w[0], w[10] = 3.0, 6.0
    kernel.weight.data.copy_(w)
    k = kernel(K)[:, 0]
    assert k[0] == 1.5 and k[1] == 1.0  # the edge averages the two taps it has
    assert k[9] == k[10] == k[11] == 2.0 and k[12] == 0 and k[8] == 0
    with pytest.raises(ValueError, match="smooth must be an odd window"):
        build("explicit", smooth=4)


def test_resampling_keeps_the_sum():
    for kind in ["explicit", "frequency"]:
        for mode in ["circular", "causal"]:
            kernel = build(kind, mode, resample=True)
            for n in [K // 4, K // 2, 2 * K, 4 * K]:
                torch.testing.assert_close(kernel(n).sum(0), kernel(K).sum(0))
    kernel = build("frequency", "full", resample=True)  # the gain at frequency 0 is kept
    for n in [5, K - 1, 3 * K + 1]:
        torch.testing.assert_close(kernel(n).sum(0), kernel(K).sum(0))
    kernel = build("multiscale", resample=True)  # a piecewise-linear construction: close
    torch.testing.assert_close(kernel(2 * K).sum(0), kernel(K).sum(0), rtol=0.1, atol=0.1)


def test_explicit_stretches_in_time_frequency_keeps_absolute_offsets():
    delta = torch.zeros(K, D, dtype=torch.float64)
    delta[1] = 1.0  # "look at the next position"
    explicit = build("explicit", resample=True)
    explicit.weight.data.copy_(delta)
    frequency = FrequencyKernel.from_taps(delta, resample=True).double()
    stretched, kept = explicit(2 * K)[:, 0], frequency(2 * K)[:, 0]
    spread = torch.tensor([0, 0.125, 0.375, 0.375, 0.125, 0], dtype=torch.float64)
    torch.testing.assert_close(stretched[:6], spread)  # [1, 2) stretched onto [2, 4), smoothed
    assert stretched[6:].abs().max() == 0
    assert kept.argmax() == 1 and kept[1] > 0.9 and kept.abs().sum() < 1.5


def test_multiscale_is_sgconv_upsampled_subkernels():
    torch.manual_seed(0)
    kernel = kernels.build("multiscale", d_model=D, max_len=K, scale_taps=4, decay=0.5).double()
    assert kernel.scales == 4  # spans 4, 4, 8, 16
    k = kernel(K) * kernel.norm
    P = kernel.weight[0]  # (S, d, D)
    up = lambda i, f: F.interpolate(P[i].t()[None], scale_factor=f, mode="linear")[0].t()  # noqa: E731
    torch.testing.assert_close(k[0:4], P[0])
    torch.testing.assert_close(k[4:8], 0.5 * P[1])
    torch.testing.assert_close(k[8:16], 0.25 * up(2, 2))
    torch.testing.assert_close(k[16:32], 0.125 * up(3, 4))
    torch.testing.assert_close(kernel(K).norm(dim=0), torch.ones(D, dtype=torch.float64))


def test_implicit_is_a_sine_mlp_times_exponential_decay():
    kernel = build("implicit", "causal")
    n = 2 * K
    s = torch.arange(n)
    h = kernel.mlp(kernel.features(s).double())
    envelope = torch.exp(-kernel.rates.double() * s[:, None] / K)
    torch.testing.assert_close(kernel(n), h * envelope / kernel.norm)
    fastest, slowest = kernel.rates[0].item(), kernel.rates[-1].item()  # 1e-2 at 0.3 K, 1.5 K
    assert math.exp(-fastest * 0.3) == pytest.approx(1e-2) == math.exp(-slowest * 1.5)
    flat = build("implicit", "causal", decay=False)
    torch.testing.assert_close(flat(n), flat.mlp(flat.features(s).double()) / flat.norm)


# ---------------------------------------------------------------------------------------------
# through the mixer

MIXER_CASES = [
    (kind, causal, padding, resample)
    for kind in KINDS
    for causal, padding in [(False, None), (False, "zero"), (True, None)]
    for resample in [False, True]
    if not (resample and kind == "implicit")
]


def conv_mixer(kind, causal=False, padding=None, resample=False, max_len=K):
    torch.manual_seed(0)
    return mixers.build(
        "global_conv",
        d_model=D,
        max_len=max_len,
        causal=causal,
        kernel=kind,
        resample=resample,
        padding=padding,
    ).double()


@pytest.mark.parametrize("kind, causal, padding, resample", MIXER_CASES)
def test_mixer_contract_holds_for_every_kernel(kind, causal, padding, resample):
    mixer = conv_mixer(kind, causal, padding, resample, max_len=20)
    L = 24 if mixer.length_free else 20
    x = torch.randn(3, L, D, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([L, 7, 12])
    y = mixer(x, lengths)
    y.square().sum().backward()
    for name, p in mixer.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches {name}"
    mixer.eval()
    x = x.detach()
    x2 = x.clone()
    x2[1, 7:] = 1e3
    x2[0] = torch.randn(L, D, dtype=torch.float64)
    y2 = mixer(x2, lengths)
    assert (y2[1, 7:] == 0).all()
    torch.testing.assert_close(y2[1, :7], mixer(x[1:2, :7])[0])  # the same alone as padded
    torch.testing.assert_close(y2[2], mixer(x, lengths)[2])
    if causal:
        xg = x[:1].clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(mixer(xg)[0, 5].sum(), xg)
        assert (grad[0, 6:].abs() < 1e-12).all()


def test_resampling_mixer_gives_each_sequence_its_own_length_kernel():
    mixer = conv_mixer("explicit", resample=True).eval()
    x = torch.randn(2, 2 * K, D, dtype=torch.float64)
    y = mixer(x, torch.tensor([2 * K, K // 2]))
    want = ops.global_conv(x[:1], mixer.kernel(2 * K), mode="circular") + mixer.skip * x[:1]
    torch.testing.assert_close(y[:1], want)
    short = x[1:, : K // 2]
    want = ops.global_conv(short, mixer.kernel(K // 2), mode="circular") + mixer.skip * short
    torch.testing.assert_close(y[1:, : K // 2], want)


def test_longer_input_is_a_clear_error_without_resampling():
    with pytest.raises(SequenceTooLongError, match=f"global_conv: sequence length {K + 8} exceeds"):
        conv_mixer("frequency")(torch.randn(1, K + 8, D, dtype=torch.float64))
    # the model refuses first, with the same type (the length study reads it as "n/a")
    for cfg in [ModelConfig(d_model=8), ModelConfig(mixer="attention", positions="learned")]:
        model = Transformer(cfg, max_len=K, num_outputs=2, vocab_size=5)
        with pytest.raises(SequenceTooLongError, match=f"input length {K + 1} exceeds"):
            model(torch.zeros(1, K + 1, dtype=torch.long))
    for kind, opts in [("implicit", {}), ("multiscale", {"resample": True})]:
        mixer = conv_mixer(kind, **opts)
        assert mixer.length_free
        assert mixer(torch.randn(1, 3 * K, D, dtype=torch.float64)).shape == (1, 3 * K, D)


def test_mixer_option_errors_name_the_fix():
    with pytest.raises(ValueError, match="set resample on the mixer"):
        mixers.build("global_conv", d_model=D, max_len=K, kernel_options={"resample": True})
    with pytest.raises(ValueError, match="causal convolution cannot wrap"):
        mixers.build("global_conv", d_model=D, max_len=K, causal=True, padding="circular")
    with pytest.raises(ValueError, match="kernel 'implicit' has no option squash"):
        mixers.build(
            "global_conv", d_model=D, max_len=K, kernel="implicit", kernel_options={"squash": 1}
        )


def test_flops_include_the_kernel_and_params_follow_the_documented_counts():
    explicit, implicit = conv_mixer("explicit"), conv_mixer("implicit")
    assert implicit.flops(K) - explicit.flops(K) == implicit.kernel.flops(K) > 0
    assert explicit.num_params() == K * D + D
    assert conv_mixer("explicit", padding="zero").num_params() == (2 * K - 1) * D + D
    assert conv_mixer("frequency").num_params() == 2 * (K // 2 + 1) * D + D
    b, W = 8, 32
    want = (1 + 2 * b) * W + W + (W * W + W) + W * D + D + 2 * W
    assert conv_mixer("implicit").num_params() == want + D
    assert conv_mixer("multiscale").num_params() == 2 * 16 * D + D  # S = 1 + log2(32/16)


# ---------------------------------------------------------------------------------------------
# optimiser hints


def test_optimiser_hints_reach_the_optimiser_parameter_groups():
    cfg = ModelConfig(
        mixer="global_conv",
        d_model=8,
        n_layers=2,
        mixer_options={"kernel": "multiscale", "kernel_options": {"lr": 1e-4, "weight_decay": 0.5}},
    )
    model = Transformer(cfg, max_len=K, num_outputs=3, vocab_size=5).double()  # hints survive .to
    kernel_params = {id(p) for b in model.blocks for p in b.mixer.kernel.parameters()}
    assert all(
        p._optim == {"lr": 1e-4, "weight_decay": 0.5}
        for b in model.blocks
        for p in b.mixer.kernel.parameters()
    )
    optimizer = torch.optim.AdamW(parameter_groups(model, 0.01), lr=1e-3)
    assert optimizer.param_groups[0]["lr"] == 1e-3  # the base learning rate's groups come first
    hinted = [g for g in optimizer.param_groups if any(id(p) in kernel_params for p in g["params"])]
    assert len(hinted) == 1 and {id(p) for p in hinted[0]["params"]} == kernel_params
    assert hinted[0]["lr"] == 1e-4 and hinted[0]["weight_decay"] == 0.5
    seen = [id(p) for g in optimizer.param_groups for p in g["params"]]
    assert sorted(seen) == sorted(id(p) for p in model.parameters())
    linear = model.blocks[0].ffn.up.weight
    (group,) = [g for g in optimizer.param_groups if any(p is linear for p in g["params"])]
    assert group["weight_decay"] == 0.01 and group["lr"] == 1e-3


def test_only_the_hints_that_are_set_are_attached():
    kernel = kernels.build("explicit", d_model=D, max_len=K, lr=3e-4)
    assert kernel.weight._optim == {"lr": 3e-4}
    assert not hasattr(kernels.build("explicit", d_model=D, max_len=K).weight, "_optim")
    with pytest.raises(ValueError, match="lr must be > 0"):
        kernels.build("explicit", d_model=D, max_len=K, lr=0)


def test_a_transformer_with_resampling_kernels_runs_at_other_lengths():
    cfg = ModelConfig(mixer="global_conv", d_model=8, mixer_options={"resample": True})
    model = Transformer(cfg, max_len=K, num_outputs=3, vocab_size=5).eval()
    for n in [K // 2, 4 * K]:
        assert model(torch.randint(0, 5, (2, n))).shape == (2, 3)
    fixed = Transformer(
        ModelConfig(mixer="global_conv", d_model=8), max_len=K, num_outputs=3, vocab_size=5
    )
    with pytest.raises(ValueError, match=f"exceeds the model's max_len={K}"):
        fixed(torch.randint(0, 5, (2, 2 * K)))
    attention = Transformer(
        ModelConfig(mixer="attention", d_model=8), max_len=K, num_outputs=3, vocab_size=5
    ).eval()
    x = torch.randint(0, 5, (1, 2 * K))
    assert attention(x).shape == (1, 3)  # sinusoidal positions are computed for any length
    pe = attention.embed_inputs(x) - attention.embed(x) * math.sqrt(8)
    torch.testing.assert_close(pe[0, :K], attention.pos_table)
