"""The operator's and the mixers' promises hold for any input (issue class 8): a sequence never
sees its padding (NaN and inf included), bad shapes are ValueErrors, double backward is clear."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from globalconv import global_conv, mixers
from globalconv.ops import native


def reference(x, kernel, mode, n):
    """The module docstring's formulas, literally, in float64, for one sequence of length n."""
    x, kernel = x.double(), kernel.double()
    L, D = x.shape
    y = torch.zeros(L, D, dtype=torch.float64)
    K = kernel.shape[0] if mode != "full" else (kernel.shape[0] + 1) // 2
    for t in range(n):
        if mode == "circular":
            y[t] = sum(kernel[s] * x[(t + s) % n] for s in range(n))
        elif mode == "causal":
            y[t] = sum((kernel[s] * x[t - s] for s in range(min(t + 1, K))), torch.zeros(D))
        else:
            terms = [kernel[K - 1 + s] * x[t + s] for s in range(-(K - 1), K) if 0 <= t + s < n]
            y[t] = sum(terms, torch.zeros(D, dtype=torch.float64))
    return y


FILLS = [math.nan, math.inf, -math.inf, 1e30, 0.0]


@st.composite
def problems(draw):
    mode = draw(st.sampled_from(["circular", "causal", "full"]))
    B, L, D = draw(st.integers(1, 3)), draw(st.integers(1, 10)), draw(st.integers(1, 3))
    ragged = draw(st.booleans())
    lengths = [draw(st.integers(1, L)) for _ in range(B)] if ragged else [L] * B
    longest = max(lengths)
    if mode == "causal":
        rows = draw(st.integers(1, L + 2))
    else:
        taps = draw(st.integers(longest, L + 2))
        rows = taps if mode == "circular" else 2 * taps - 1
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    seed = draw(st.integers(0, 2**16))
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, L, D, generator=g, dtype=torch.float64)
    kernel = torch.randn(rows, D, generator=g, dtype=torch.float64) / max(L, 1)
    fill = draw(st.sampled_from(FILLS))
    for b, n in enumerate(lengths):
        x[b, n:] = fill
    backend = draw(st.sampled_from(["fft", "direct", "auto"]))
    return mode, x.to(dtype), kernel.to(dtype), torch.tensor(lengths) if ragged else None, backend


@settings(max_examples=250, deadline=None)
@given(problem=problems())
def test_every_output_matches_the_float64_reference_whatever_the_padding_holds(problem):
    mode, x, kernel, lengths, backend = problem
    x.requires_grad_(True)
    kernel = kernel.clone().requires_grad_(True)
    y = global_conv(x, kernel, mode=mode, lengths=lengths, backend=backend)
    tol = 1e-9 if x.dtype == torch.float64 else 1e-4
    for b in range(x.shape[0]):
        n = x.shape[1] if lengths is None else int(lengths[b])
        expected = reference(x[b].detach(), kernel.detach(), mode, n)
        torch.testing.assert_close(y[b, :n].double(), expected[:n], rtol=tol, atol=tol)
        assert (y[b, n:] == 0).all()
    y.sum().backward()
    assert torch.isfinite(kernel.grad).all()  # the padding reaches no gradient either


@pytest.mark.parametrize(
    "shape, kernel_shape, message",
    [
        ((2, 8, 0), (8, 0), "one channel"),
        ((0, 8, 3), (8, 3), "one sequence"),
        ((2, 0, 3), (8, 3), "one position"),
        ((8, 3), (8, 3), r"x must have shape \(B, L, D\)"),
        ((2, 8, 3), (8,), r"kernel must have shape \(K, D\)"),
    ],
)
def test_degenerate_shapes_are_value_errors(shape, kernel_shape, message):
    with pytest.raises(ValueError, match=message):
        global_conv(torch.randn(shape), torch.randn(kernel_shape))


@pytest.mark.parametrize(
    "backend",
    [
        "fft",
        pytest.param(
            "native",
            marks=pytest.mark.skipif(not native.available(), reason="native kernel unavailable"),
        ),
    ],
)
@pytest.mark.parametrize("mode", ["circular", "causal", "full"])
def test_double_backward_through_the_fft_backends_is_a_clear_error(mode, backend):
    x = torch.randn(2, 8, 3, dtype=torch.float64, requires_grad=True)
    kernel = torch.randn(8 if mode != "full" else 15, 3, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(
        (global_conv(x, kernel, mode=mode, backend="direct") ** 2).sum(), x, create_graph=True
    )
    assert g.requires_grad  # the direct path has second derivatives
    y = global_conv(x, kernel, mode=mode, backend=backend)
    with pytest.raises(RuntimeError, match="first derivatives only.*backend='direct'"):
        torch.autograd.grad((y**2).sum(), x, create_graph=True)


def _every_mixer():
    for name in mixers.available():
        cls = mixers.get(name)
        for causal in (False, True):
            if cls.supports_causal if causal else cls.supports_bidirectional:
                yield name, causal


MIXERS = list(_every_mixer())


@pytest.mark.parametrize("name, causal", MIXERS)
@pytest.mark.parametrize(
    "shape, message",
    [
        ((16, 8), r"x must have shape \(B, L, 8\)"),
        ((2, 0, 8), "B, L >= 1"),
        ((0, 4, 8), "B, L >= 1"),
        ((2, 4, 5), r"\(B, L, 8\)"),
    ],
)
def test_every_mixer_refuses_bad_shapes_alike(name, causal, shape, message):
    mixer = mixers.build(name, d_model=8, max_len=16, causal=causal)
    with pytest.raises(ValueError, match=f"{name}: .*{message}"):
        mixer(torch.randn(shape))


@pytest.mark.parametrize("name, causal", MIXERS)
def test_every_mixer_refuses_lengths_out_of_range(name, causal):
    mixer = mixers.build(name, d_model=8, max_len=16, causal=causal)
    for lengths in (torch.tensor([0, 4]), torch.tensor([4, 9]), torch.tensor([4.0, 4.0])):
        with pytest.raises(ValueError, match=f"{name}: lengths"):
            mixer(torch.randn(2, 8, 8), lengths)


@settings(max_examples=60, deadline=None)
@given(
    mixer=st.sampled_from(MIXERS),
    lengths=st.lists(st.integers(1, 12), min_size=1, max_size=3),
    fill=st.sampled_from(FILLS),
)
def test_no_mixer_lets_the_padding_reach_a_sequence(mixer, lengths, fill):
    name, causal = mixer
    torch.manual_seed(0)
    module = mixers.build(name, d_model=8, max_len=12, causal=causal).eval()
    x = torch.randn(len(lengths), 12, 8)
    clean = x.clone()
    for b, n in enumerate(lengths):
        x[b, n:] = fill
        clean[b, n:] = 0
    n = torch.tensor(lengths)
    y, expected = module(x, lengths=n), module(clean, lengths=n)
    for b, m in enumerate(lengths):
        torch.testing.assert_close(y[b, :m], expected[b, :m])
        assert (y[b, m:] == 0).all()
