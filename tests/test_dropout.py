import pytest
import torch

from globalconv.models.dropout import Dropout


def test_drops_at_the_rate_and_keeps_the_expectation():
    torch.manual_seed(0)
    d = Dropout(0.1)
    y = d(torch.ones(400, 1000))
    dropped = (y == 0).float().mean()
    assert abs(dropped - 0.1) < 0.003  # 4e5 draws: std 0.0005
    assert y.mean() == pytest.approx(1.0, abs=0.005)
    kept = y[y != 0]
    torch.testing.assert_close(kept, torch.full_like(kept, d.scale))
    assert d.scale == pytest.approx(1 / (1 - 6554 / 2**16))  # p rounded to a multiple of 2^-16


def test_lanes_of_one_word_are_independent():
    torch.manual_seed(1)
    y = Dropout(0.5)(torch.ones(200_000, 4))  # a row is one 64-bit word's four lanes
    drops = (y == 0).float()
    assert torch.allclose(drops.mean(0), torch.full((4,), 0.5), atol=0.01)
    both = (drops[:, 0] * drops[:, 3]).mean()  # independent: 0.25
    assert abs(both - 0.25) < 0.01


def test_eval_and_zero_rate_are_the_identity_and_seeds_reproduce():
    x = torch.randn(3, 5, 7)
    d = Dropout(0.3)
    d.eval()
    assert d(x) is x and Dropout(0.0)(x) is x
    d.train()
    torch.manual_seed(2)
    a = d(x)
    torch.manual_seed(2)
    assert torch.equal(a, d(x))


def test_gradient_is_the_mask_and_dtype_is_kept():
    x = torch.randn(6, 9, requires_grad=True)
    y = Dropout(0.4)(x)
    y.sum().backward()
    torch.testing.assert_close(x.grad, (y.detach() / x.detach()).nan_to_num())
    assert Dropout(0.2)(torch.ones(4, 4, dtype=torch.bfloat16)).dtype == torch.bfloat16


def test_bad_rate_is_an_error():
    with pytest.raises(ValueError, match=r"in \[0, 1\)"):
        Dropout(1.0)
