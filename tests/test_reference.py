"""reference/global_conv_reference.py, the one-file reference, against the package's operator
and mixer: same numbers in every mode, with ragged lengths, from the same weights."""

import importlib.util
from pathlib import Path

import pytest
import torch

from globalconv import mixers, ops

PATH = Path(__file__).resolve().parents[1] / "reference" / "global_conv_reference.py"
spec = importlib.util.spec_from_file_location("global_conv_reference", PATH)
reference = importlib.util.module_from_spec(spec)
spec.loader.exec_module(reference)

B, L, D = 3, 11, 4
LENGTHS = torch.tensor([11, 7, 1])


@pytest.mark.parametrize("mode", ["circular", "causal", "full"])
@pytest.mark.parametrize("ragged", [False, True])
@pytest.mark.parametrize("backend", ["direct", "fft"])
def test_the_operator_matches_the_reference(mode, ragged, backend):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(B, L, D, generator=g, dtype=torch.float64)
    k = torch.randn(2 * L - 1 if mode == "full" else L, D, generator=g, dtype=torch.float64)
    lengths = LENGTHS if ragged else None
    want = reference.global_conv(x, k, mode, lengths)
    got = ops.global_conv(x, k, mode=mode, lengths=lengths, backend=backend)
    torch.testing.assert_close(got, want)


def test_circular_mode_is_the_convolution_theorem():
    g = torch.Generator().manual_seed(1)
    x, k = torch.randn(B, L, D, generator=g), torch.randn(L, D, generator=g)
    torch.testing.assert_close(reference.circular_fft(x, k), reference.global_conv(x, k))


@pytest.mark.parametrize("causal, padding", [(False, None), (False, "zero"), (True, None)])
def test_the_mixer_matches_the_reference_with_the_same_weights(causal, padding):
    torch.manual_seed(2)
    options = {} if padding is None else {"padding": padding}
    mixer = mixers.build("global_conv", d_model=D, max_len=L + 3, causal=causal, **options)
    ours = reference.GlobalConvMixer(D, L + 3, causal, padding or "circular")
    assert ours.weight.shape == mixer.kernel.weight.shape  # the same table, the same init scale
    with torch.no_grad():
        mixer.skip.copy_(torch.randn(D))  # not the initial ones: the skip term is checked too
        ours.weight.copy_(mixer.kernel.weight)
        ours.skip.copy_(mixer.skip)
    x = torch.randn(B, L, D)
    torch.testing.assert_close(mixer(x), ours(x))
    x[1, 7:] = float("nan")  # padding: it never reaches a sequence's outputs
    torch.testing.assert_close(mixer(x, LENGTHS), ours(x, LENGTHS))
