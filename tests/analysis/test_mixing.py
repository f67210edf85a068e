import torch

from globalconv import mixers
from globalconv.analysis import mixing


def test_circulant_is_the_global_conv_mixer():
    m = mixers.build("global_conv", d_model=4, max_len=8).double()
    x = torch.randn(8, 4, dtype=torch.float64)
    M = mixing.circulant(m.kernel.weight.detach(), m.skip.detach())
    torch.testing.assert_close(torch.einsum("ctj,jc->tc", M, x), m(x[None])[0])
    torch.testing.assert_close(mixing.influence(m, x), M.pow(2).sum(0).sqrt())


def test_attention_weights_are_distributions_and_causal():
    a = mixers.build("attention", d_model=8, max_len=8, heads=2, causal=True)
    w = mixing.attention_weights(a, torch.randn(6, 8))
    assert w.shape == (2, 6, 6)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 6))
    assert (w.triu(1) == 0).all()
