"""Every registered mixer honours the TokenMixer contract; a new mixer gets these by registering."""

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from globalconv import mixers
from globalconv.config import ModelConfig
from globalconv.models import Transformer

D, L = 16, 24


@pytest.fixture(autouse=True)
def one_thread():
    """Tensors here are tiny: on shared cores extra threads only add waiting."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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


@pytest.mark.parametrize("name", [n for n, c in CASES if not c])
def test_bidirectional_variants_see_both_sides(name):
    mixer = build(name).eval()
    x = torch.randn(1, L, D, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(mixer(x)[0, L // 2].sum(), x)
    seen = grad[0].abs().sum(-1)  # (L,)
    assert seen[L // 2 - 1] > 0 and seen[L // 2 + 1] > 0, f"{name} ignores one side"


@pytest.mark.parametrize("name, causal", CASES)
def test_deterministic_under_a_seed(name, causal):
    x = torch.randn(2, L, D, dtype=torch.float64)
    a, b = build(name, causal), build(name, causal)
    torch.testing.assert_close(a.eval()(x), b.eval()(x))
    outputs = []
    for mixer in (a.train(), b.train()):  # training mode too: dropout follows the seed
        torch.manual_seed(1)
        outputs.append(mixer(x, torch.tensor([L, 9])))
    torch.testing.assert_close(*outputs, rtol=0, atol=0)


@pytest.mark.parametrize("name, causal", CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_bf16_autocast_follows_float32(name, causal, dtype):
    torch.manual_seed(0)
    mixer = mixers.build(name, d_model=D, max_len=32, causal=causal).eval()
    x, lengths = torch.randn(2, L, D), torch.tensor([L, 9])
    want = mixer(x, lengths)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = mixer(x.to(dtype), lengths)
    assert got.shape == x.shape and torch.isfinite(got).all()
    assert (got[1, 9:] == 0).all(), "outputs past the true length must be 0"
    error = (got.float() - want).norm() / want.norm()
    assert error < 0.05, f"{name}: bf16 relative error {error:.3f}"


@pytest.mark.parametrize("name, causal", CASES)
def test_flops_and_params_are_reported(name, causal):
    mixer = build(name, causal)
    assert mixer.num_params() == sum(p.numel() for p in mixer.parameters())
    assert mixer.flops(16) > 0 and mixer.flops(32) > mixer.flops(16)


@pytest.mark.parametrize("name, causal", CASES)
def test_flops_cover_what_torch_counts(name, causal):
    """The analytic count includes every matmul and convolution torch's counter sees, and (where
    it sees the bulk: not SDPA or FFTs) is not far above it: softmax and gates make the rest."""
    opts = {"backend": "direct"} if "backend" in mixers.options(name) else {}
    mixer = mixers.build(name, d_model=32, max_len=32, causal=causal, **opts)
    with FlopCounterMode(display=False) as counter:
        mixer(torch.randn(1, 32, 32))
    counted = counter.get_total_flops()
    assert counted <= mixer.flops(32)
    if name not in ("attention", "fnet"):
        assert mixer.flops(32) <= 1.5 * counted


@pytest.mark.parametrize("name, causal", CASES)
def test_state_size_is_reported_for_causal_variants_only(name, causal):
    size = build(name, causal).state_size(16)
    if not causal:
        assert size is None
    else:
        assert isinstance(size, int) and size > 0
    if causal and name in ("global_conv", "gated_global_conv"):
        assert size == 16 * D  # every past input


# One impossible configuration per mixer beyond unknown options: a refused direction (below)
# or an option value that cannot work. A new mixer adds its line here.
BAD_OPTIONS = [
    ("attention", {"heads": 3}, "not divisible by heads=3"),
    ("baseconv", {"short_kernel": 4}, "short_kernel must be odd"),
    ("baseconv", {"short_kernel": 0}, "short_kernel must be >= 1"),
    ("dynamicconv", {"kernel_size": 4}, "odd kernel_size, got 4; use 5"),
    ("dynamicconv", {"heads": 3}, "not divisible by heads=3"),
    ("gated_global_conv", {"backend": "nope"}, "option backend: Input should be 'auto'"),
    ("global_conv", {"backend": "nope"}, "option backend: Input should be 'auto'"),
    ("hyena", {"order": 1}, "order must be >= 2"),
    ("hyena", {"short_kernel": 4}, "short_kernel must be odd"),
    ("hyena", {"backend": "nope"}, "option backend: Input should be 'auto'"),
    ("lightconv", {"kernel_size": 0}, "kernel_size must be >= 1"),
    ("lightconv", {"weight_dropout": 1.0}, r"weight_dropout must lie in \[0, 1\)"),
    ("mlp_mixer", {"hidden": 0}, "hidden must be >= 1"),
    ("synthesizer_dense", {"heads": 5}, "not divisible by heads=5"),
    ("synthesizer_random", {"heads": 0}, "not divisible by heads=0"),
]


@pytest.mark.parametrize("name, opts, message", BAD_OPTIONS)
def test_impossible_options_are_clear_errors(name, opts, message):
    with pytest.raises(ValueError, match=message):
        mixers.build(name, d_model=D, max_len=32, **opts)


@pytest.mark.parametrize("name", mixers.available())
def test_refused_directions_are_clear_errors(name):
    cls = mixers.get(name)
    assert cls.supports_causal or cls.supports_bidirectional
    if not cls.supports_causal:
        with pytest.raises(ValueError, match=f"mixer '{name}' cannot be causal"):
            mixers.build(name, d_model=D, max_len=32, causal=True)
    if not cls.supports_bidirectional:
        with pytest.raises(ValueError, match=f"mixer '{name}' is causal only"):
            mixers.build(name, d_model=D, max_len=32, causal=False)
    both = cls.supports_causal and cls.supports_bidirectional
    assert not both or name in {n for n, _, _ in BAD_OPTIONS}, f"add {name} to BAD_OPTIONS"


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


@pytest.mark.parametrize("name, causal", CASES)
def test_each_mixer_trains_loss_falls_on_a_tiny_task(name, causal):
    """One block around the mixer fits 32 random sequences with random labels in 40 steps."""
    torch.manual_seed(0)
    cfg = ModelConfig(mixer=name, d_model=16, n_layers=1, dropout=0.0)
    model = Transformer(cfg, max_len=12, num_outputs=4, vocab_size=8, causal=causal)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, lengths, y = (
        torch.randint(0, 8, (32, 12)),
        torch.randint(6, 13, (32,)),
        torch.randint(0, 4, (32,)),
    )
    losses = []
    for _ in range(40):
        loss = F.cross_entropy(model(x, lengths), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], f"{name}: loss {losses[0]:.3f} -> {losses[-1]:.3f}"


@pytest.mark.slow
@pytest.mark.parametrize("name, causal", CASES)
def test_compiled_forward_matches_eager(name, causal):
    torch._dynamo.reset()
    torch.manual_seed(0)
    mixer = mixers.build(name, d_model=D, max_len=32, causal=causal).eval()
    x, lengths = torch.randn(2, L, D), torch.tensor([L, 9])
    compiled = torch.compile(mixer)
    torch.testing.assert_close(compiled(x, lengths), mixer(x, lengths), rtol=1e-4, atol=1e-4)


# --- each mixer is the method its paper describes ------------------------------------------


def test_fnet_is_the_real_part_of_a_2d_dft_and_has_no_parameters():
    m = build("fnet")
    x = torch.randn(2, L, D, dtype=torch.float64)
    torch.testing.assert_close(m(x), torch.from_numpy(np.fft.fft2(x.numpy()).real))
    assert m.num_params() == 0 and m.flops(L) == int(2.5 * L * D * math.log2(L * D))


def test_mlp_mixer_is_one_mlp_across_positions_shared_by_channels():
    m = build("mlp_mixer")
    x = torch.randn(1, 32, D, dtype=torch.float64)
    want = m.down(F.gelu(m.up(x[0].T))).T  # each channel's column of 32 positions through the MLP
    torch.testing.assert_close(m(x)[0], want)
    short = x[:, :10]  # a shorter sequence is read as zero-padded to max_len
    torch.testing.assert_close(m(short)[0], m(F.pad(short, (0, 0, 0, 22)))[0, :10])
    assert m.num_params() == 2 * 32 * (D // 2) + D // 2 + 32


@pytest.mark.parametrize("causal", [False, True])
def test_synthesizers_mix_with_softmax_of_synthesised_weights(causal):
    x = torch.randn(1, L, D, dtype=torch.float64)
    future = torch.ones(L, L, dtype=torch.bool).triu(1) if causal else torch.zeros(L, L).bool()

    m = build("synthesizer_random", causal, heads=1)
    A = torch.softmax(m.R[0, :L, :L].masked_fill(future, -math.inf), -1)
    torch.testing.assert_close(m(x)[0], m.out(A @ m.value(x[0])))

    m = build("synthesizer_dense", causal, heads=1)
    logits = F.relu(m.hidden(x[0])) @ m.w2[0, :, :L] + m.b2[0, :L]  # row t from x_t alone
    A = torch.softmax(logits.masked_fill(future, -math.inf), -1)
    torch.testing.assert_close(m(x)[0], m.out(A @ m.value(x[0])))

    fixed = mixers.build("synthesizer_random", d_model=D, max_len=32, trainable=False)
    assert "R" not in dict(fixed.named_parameters()) and "R" in fixed.state_dict()


@pytest.mark.parametrize("name", ["lightconv", "dynamicconv"])
@pytest.mark.parametrize("causal", [False, True])
def test_light_and_dynamic_convolutions_follow_the_paper(name, causal):
    k, H = 5, 4
    m = build(name, causal, kernel_size=k, heads=H)
    x = torch.randn(1, L, D, dtype=torch.float64)
    u = F.glu(m.inp(x[0]), dim=-1)  # (L, D)
    if name == "lightconv":
        w = torch.softmax(m.kernel, -1).expand(L, H, k)  # one kernel per head, every position
    else:
        w = torch.softmax(m.predict(u).view(L, H, k), -1)  # predicted from position t alone
    w = w.repeat_interleave(D // H, dim=1)  # (L, D, k): channel c uses its head's kernel
    left = k - 1 if causal else k // 2
    v = torch.zeros(L, D, dtype=torch.float64)
    for t in range(L):
        for j in range(k):
            if 0 <= t + j - left < L:
                v[t] += w[t, :, j] * u[t + j - left]
    torch.testing.assert_close(m(x)[0], m.out(v))


@pytest.mark.parametrize("causal", [False, True])
def test_hyena_is_the_gated_recurrence_over_implicit_long_filters(causal):
    """Order 2 as the authors' implementation (and Zoology's) computes it: one long filter,
    between a gate before it and one after, y = out(x2 * (h * (x1 * v) + beta * (x1 * v)))."""
    m = build("hyena", causal)  # order 2, short kernel 3
    x = torch.randn(1, L, D, dtype=torch.float64)
    u = m.inp(x[0])  # (L, 3D)
    left = 2 if causal else 1
    w = m.short.weight[:, 0]  # (3D, 3)
    s = m.short.bias.expand(L, -1).clone()
    for t in range(L):
        for j in range(3):
            if 0 <= t + j - left < L:
                s[t] += w[:, j] * u[t + j - left]
    v, x1, x2 = s.split(D, dim=-1)
    z = x1 * v
    # causal: row s weighs x[t-s]; bidirectional: row L-1+s weighs x[t+s] (the operator's rows)
    h = m.filter(L)  # (rows, D): the only long filter
    assert h.shape[1] == D and m.beta.shape == (1, D)
    conv = torch.zeros(L, D, dtype=torch.float64)
    for t in range(L):
        for src in range(L):
            if causal and src <= t:
                conv[t] += h[t - src] * z[src]
            elif not causal:
                conv[t] += h[L - 1 + src - t] * z[src]
    torch.testing.assert_close(m(x)[0], m.out(x2 * (conv + m.beta[0] * z)))
    # the filter is implicit: its parameters do not grow with the sequence
    longer = mixers.build("hyena", d_model=D, max_len=4096, causal=causal)
    assert longer.num_params() == m.num_params()


@pytest.mark.parametrize("causal", [False, True])
def test_gated_global_conv_is_global_conv_times_a_linear_gate(causal):
    gated, plain = build("gated_global_conv", causal), build("global_conv", causal)
    with torch.no_grad():
        plain.kernel.weight.copy_(gated.kernel.weight)
        plain.skip.copy_(gated.skip)
    x, lengths = torch.randn(2, L, D, dtype=torch.float64), torch.tensor([L, 9])
    torch.testing.assert_close(gated(x, lengths), gated.gate(x) * plain(x, lengths))
    assert gated.num_params() == plain.num_params() + D * D + D
    assert mixers.options("gated_global_conv") == mixers.options("global_conv")


@pytest.mark.parametrize("causal", [False, True])
def test_baseconv_is_a_gate_times_a_long_convolution_of_a_short_one(causal):
    base, plain = build("baseconv", causal), build("global_conv", causal)
    with torch.no_grad():
        plain.kernel.weight.copy_(base.kernel.weight)
        plain.skip.copy_(base.skip)
    x = torch.randn(1, L, D, dtype=torch.float64)
    left = 2 if causal else 1  # 3 taps looking back, or centred
    w = base.short.weight[:, 0]  # (D, 3)
    u = base.short.bias.expand(L, -1).clone()
    for t in range(L):
        for j in range(3):
            if 0 <= t + j - left < L:
                u[t] += w[:, j] * x[0, t + j - left]
    torch.testing.assert_close(base(x)[0], base.gate(x[0]) * plain(u[None])[0])
    assert base.num_params() == plain.num_params() + D * D + D + 3 * D + D
    assert set(mixers.options("baseconv")) == {"short_kernel", *mixers.options("global_conv")}


def test_readme_table_lists_every_mixer_with_its_parameter_count():
    """The README's mixer table: every registered mixer, parameters at D=256, L=1024 as built."""
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert "parameters at D=256, L=1024" in readme
    rows = dict(re.findall(r"^\| `(\w+)` \|.*\| ([\d,]+) \|$", readme, flags=re.MULTILINE))
    assert sorted(rows) == mixers.available()
    for name, count in rows.items():
        built = mixers.build(name, d_model=256, max_len=1024).num_params()
        assert int(count.replace(",", "")) == built, f"README says {count} for {name}: {built:,}"
