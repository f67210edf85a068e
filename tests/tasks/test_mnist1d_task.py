"""MNIST-1D: the published split, standardisation, the shuffled variant, validation hold-out."""

import pytest
import torch

from globalconv import tasks


@pytest.fixture(scope="module")
def plain():
    return tasks.build("mnist1d").splits()


def test_published_split_shapes_and_labels(plain):
    assert set(plain) == {"train", "test"}
    assert plain["train"].inputs.shape == (4000, 40, 1)
    assert plain["test"].inputs.shape == (1000, 40, 1)
    assert plain["train"].inputs.dtype == torch.float32
    assert sorted(set(plain["train"].targets.tolist())) == list(range(10))
    x = plain["train"].inputs
    assert abs(float(x.mean())) < 1e-4 and abs(float(x.std()) - 1) < 1e-3  # standardised
    spec = tasks.build("mnist1d").spec
    assert (spec.max_len, spec.num_outputs, spec.input_dim, spec.head) == (40, 10, 1, "sequence")


def test_shuffled_is_one_fixed_permutation_of_positions(plain):
    shuffled = tasks.build("mnist1d", dict(shuffled=True)).splits()
    a, b = plain["train"].inputs[..., 0], shuffled["train"].inputs[..., 0]
    assert not torch.equal(a, b)
    # the same permutation maps every example, in train and test alike (the standardisation
    # sums in another order, hence the tolerance)
    same = lambda u, v: torch.isclose(u, v, atol=1e-5).all(0)  # noqa: E731
    perm = [int(same(a, b[:, t, None]).nonzero()[0, 0]) for t in range(40)]
    assert sorted(perm) == list(range(40))
    torch.testing.assert_close(a[:, perm], b, atol=1e-5, rtol=0)
    torch.testing.assert_close(
        plain["test"].inputs[:, perm, 0], shuffled["test"].inputs[..., 0], atol=1e-5, rtol=0
    )
    assert torch.equal(plain["train"].targets, shuffled["train"].targets)


def test_validation_hold_out(plain):
    held = tasks.build("mnist1d", dict(valid_fraction=0.1)).splits()
    assert len(held["train"]) == 3600 and len(held["valid"]) == 400
    assert torch.equal(
        torch.cat([held["train"].inputs, held["valid"].inputs]), plain["train"].inputs
    )
