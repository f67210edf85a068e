from dataclasses import dataclass

import pytest
import torch

from globalconv import config, mixers
from globalconv.analysis import circulant, mixing
from globalconv.analysis.document import Document
from globalconv.analysis.report import collect_runs
from globalconv.config import ModelConfig
from globalconv.models import Transformer
from globalconv.train import train


def permutation_map(perm: torch.Tensor) -> torch.Tensor:
    L = len(perm)
    A = torch.zeros(L, L, dtype=torch.float64)
    A[torch.arange(L), perm] = 1.0
    return A


def test_a_circulant_map_is_all_circulant_and_a_toeplitz_one_all_toeplitz():
    kernel = torch.rand(12, 3, dtype=torch.float64)
    C = mixing.circulant(kernel)  # (3, 12, 12), one circulant per channel
    torch.testing.assert_close(circulant.nearest(C, "circulant"), C)
    torch.testing.assert_close(
        circulant.shift_invariant_share(C, "circulant"), torch.ones(3, dtype=torch.float64)
    )
    diagonals = torch.rand(2 * 12 - 1, dtype=torch.float64)
    t = torch.arange(12)
    T = diagonals[t[None, :] - t[:, None] + 11]  # T[t, j] depends on j - t only
    torch.testing.assert_close(
        circulant.shift_invariant_share(T, "toeplitz"), torch.tensor(1.0, dtype=torch.float64)
    )
    assert circulant.shift_invariant_share(T, "circulant") < 1  # not constant on wrapped ones


def test_a_permutation_with_one_entry_per_wrapped_diagonal_keeps_exactly_1_over_L():
    L = 31  # odd, so t -> 2t mod L is a permutation; its offsets 2t - t = t are all distinct
    A = permutation_map(2 * torch.arange(L) % L)
    assert circulant.shift_invariant_share(A, "circulant").item() == pytest.approx(1 / L)


@pytest.mark.parametrize("structure", ["circulant", "toeplitz"])
def test_a_random_permutation_keeps_its_diagonal_counts_share_and_under_5_percent(structure):
    """Share of a permutation map = Σ_d c_d² / len_d / L, c_d its ones on diagonal d of length
    len_d; for a random permutation of 128 positions that is below 0.05 in both structures."""
    L = 128
    perm = torch.randperm(L, generator=torch.Generator().manual_seed(0))
    A = permutation_map(perm)
    offsets = perm - torch.arange(L)
    if structure == "circulant":
        counts, lengths = torch.bincount(offsets % L, minlength=L), torch.full((L,), L)
    else:
        counts = torch.bincount(offsets + L - 1, minlength=2 * L - 1)
        lengths = L - torch.arange(-(L - 1), L).abs()
    expected = (counts.double() ** 2 / lengths).sum() / L
    share = circulant.shift_invariant_share(A, structure)
    assert share.item() == pytest.approx(expected.item())
    assert share < 0.05


@pytest.mark.parametrize("structure", ["circulant", "toeplitz"])
def test_the_share_ignores_scale_and_the_projection_is_orthogonal(structure):
    A = torch.rand(4, 20, 20, dtype=torch.float64)
    share = circulant.shift_invariant_share(A, structure)
    torch.testing.assert_close(circulant.shift_invariant_share(3.7 * A, structure), share)
    P = circulant.nearest(A, structure)
    torch.testing.assert_close(circulant.nearest(P, structure), P)  # a projection
    assert ((A - P) * P).sum((-2, -1)).abs().max() < 1e-9  # residual orthogonal to it
    assert ((share > 0) & (share < 1)).all()


def test_the_toeplitz_part_of_a_causal_map_is_causal_and_a_causal_conv_is_all_toeplitz():
    A = torch.rand(16, 16, dtype=torch.float64).tril()
    assert (circulant.nearest(A, "toeplitz").triu(1) == 0).all()
    kernel = torch.rand(16, dtype=torch.float64)
    t = torch.arange(16)
    lag = t[:, None] - t[None, :]
    causal_conv = torch.where(lag >= 0, kernel[lag.clamp(min=0)], 0.0)
    torch.testing.assert_close(
        circulant.shift_invariant_share(causal_conv, "toeplitz"),
        torch.tensor(1.0, dtype=torch.float64),
    )


def test_the_uniform_share_is_1_for_averaging_1_over_L_for_a_permutation_and_within_both():
    L = 16
    torch.testing.assert_close(
        circulant.uniform_share(torch.full((L, L), 1 / L, dtype=torch.float64)),
        torch.tensor(1.0, dtype=torch.float64),
    )
    A = permutation_map(torch.randperm(L, generator=torch.Generator().manual_seed(1)))
    assert circulant.uniform_share(A).item() == pytest.approx(1 / L)
    maps = torch.rand(5, L, L, dtype=torch.float64)
    uniform = circulant.uniform_share(maps)
    for structure in ("circulant", "toeplitz"):
        assert (uniform <= circulant.shift_invariant_share(maps, structure) + 1e-12).all()


def test_bad_maps_are_errors():
    with pytest.raises(ValueError, match="square"):
        circulant.nearest(torch.rand(3, 4), "circulant")
    with pytest.raises(ValueError, match="all zeros"):
        circulant.shift_invariant_share(torch.zeros(2, 5, 5), "toeplitz")
    with pytest.raises(ValueError, match="unknown structure"):
        circulant.nearest(torch.rand(4, 4), "hankel")


def test_input_dependent_share_is_0_for_equal_maps_and_the_running_mean_agrees():
    same = torch.rand(1, 2, 6, 6).expand(5, 2, 6, 6)
    torch.testing.assert_close(circulant.input_dependent_share(same), torch.zeros(2))
    maps = torch.rand(9, 2, 6, 6, dtype=torch.float64)
    running = circulant._MeanMap()
    for chunk in maps.split(4):
        running.add(chunk)
    torch.testing.assert_close(running.mean(), maps.mean(0))
    torch.testing.assert_close(running.input_dependent(), circulant.input_dependent_share(maps))


@pytest.mark.parametrize("causal", [False, True])
def test_attention_maps_are_the_weights_the_forward_uses(causal):
    torch.manual_seed(0)
    a = mixers.build("attention", d_model=8, max_len=7, causal=causal, heads=2).double()
    x, lengths = torch.randn(3, 7, 8, dtype=torch.float64), torch.tensor([7, 4, 1])
    maps = a.attention_maps(x, lengths)  # (B, H, L, L)
    _, _, v = a.qkv(x).view(3, 7, 3, 2, 4).permute(2, 0, 3, 1, 4)
    y = a.out((maps @ v).transpose(1, 2).reshape(3, 7, 8))
    keep = (torch.arange(7)[None, :] < lengths[:, None])[..., None]
    torch.testing.assert_close(y * keep, a(x, lengths))
    rows = maps.sum(-1)  # 1 on a sequence's rows, 0 on its padding
    torch.testing.assert_close(rows, keep[:, None, :, 0].expand(3, 2, 7).double())
    assert (maps[1, :, :, 4:] == 0).all()  # no weight on padded keys
    if causal:
        assert (maps.triu(1) == 0).all()


@pytest.mark.parametrize("causal", [False, True])
def test_uniform_attention_is_a_fixed_map_circulant_only_when_bidirectional(causal):
    """With Q = K = 0 every head averages: over all positions (a constant kernel, circulant)
    or over the prefix (1/(t+1) on row t, not shift-invariant)."""
    model = Transformer(
        ModelConfig(mixer="attention", d_model=8, n_layers=2, mixer_options={"heads": 2}),
        max_len=10, num_outputs=3, head="token", causal=causal, vocab_size=5,
    )  # fmt: skip
    for block in model.blocks:
        torch.nn.init.zeros_(block.mixer.qkv.weight[:16])
        torch.nn.init.zeros_(block.mixer.qkv.bias[:16])
    batches = [{"inputs": torch.randint(0, 5, (4, 10)), "lengths": torch.tensor([10, 10, 10, 6])}]
    measures = circulant.measure_model(model, batches)
    assert [(m.layer, m.head) for m in measures] == [
        (f"blocks.{i}.mixer", h) for i in range(2) for h in range(2)
    ]
    for m in measures:
        assert (m.length, m.sequences, m.causal) == (10, 3, causal)
        assert m.input_dependent == pytest.approx(0, abs=1e-12)
        if causal:
            assert m.structure == "toeplitz" and 0.5 < m.toeplitz < 0.99
        else:
            assert m.structure == "circulant" and m.circulant == pytest.approx(1)
            assert m.toeplitz == pytest.approx(1) and m.fixed_share == pytest.approx(1)
            assert m.uniform == pytest.approx(1)


def test_an_encoder_decoder_is_measured_in_both_stacks_at_each_stacks_common_length():
    from globalconv.models import EncoderDecoder

    torch.manual_seed(0)
    model = EncoderDecoder(
        ModelConfig(mixer="attention", d_model=8, n_layers=1, mixer_options={"heads": 2}),
        max_len=9, num_outputs=5, vocab_size=5,
    )  # fmt: skip
    batch = {
        "inputs": torch.randint(0, 5, (4, 9)), "lengths": torch.tensor([9, 7, 7, 7]),
        "decoder_inputs": torch.randint(0, 5, (4, 8)),
        "decoder_lengths": torch.tensor([8, 8, 5, 8]),
    }  # fmt: skip
    measures = circulant.measure_model(model, [batch])
    found = {(m.layer, m.causal, m.length, m.sequences) for m in measures}
    assert found == {("encoder.0.mixer", False, 7, 3), ("decoder.0.mixer", True, 8, 3)}
    capped = circulant.measure_model(model, [batch, batch], samples=2)
    assert {m.sequences for m in capped} == {2}


def test_lengths_a_model_changes_on_the_way_are_counted_by_running_it():
    """Lengths are read from the batch when the layers get the batch's own tensor; a model
    that passes a copy is run instead, with the same result."""

    class Copying(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, inputs, lengths):
            return self.inner(inputs, lengths.clone())

    torch.manual_seed(0)
    model = Transformer(
        ModelConfig(mixer="attention", d_model=8, n_layers=1, mixer_options={"heads": 2}),
        max_len=8, num_outputs=3, vocab_size=5,
    )  # fmt: skip
    batches = [
        {"inputs": torch.randint(0, 5, (3, 8)), "lengths": torch.tensor([8, 5, 5])},
        {"inputs": torch.randint(0, 5, (3, 8)), "lengths": torch.tensor([5, 8, 5])},
    ]
    direct = circulant.measure_model(model, batches)
    copied = circulant.measure_model(Copying(model), batches)
    assert [(m.length, m.sequences) for m in direct] == [(5, 4), (5, 4)]
    for a, b in zip(direct, copied, strict=True):
        assert b.layer == "inner." + a.layer
        assert (a.length, a.sequences, a.circulant, a.input_dependent) == pytest.approx(
            (b.length, b.sequences, b.circulant, b.input_dependent)
        )


def test_a_model_without_attention_is_an_error():
    model = Transformer(
        ModelConfig(mixer="global_conv", d_model=8, n_layers=1), max_len=6, num_outputs=2,
        vocab_size=4,
    )  # fmt: skip
    with pytest.raises(ValueError, match="no attention layers"):
        circulant.measure_model(model, [{"inputs": torch.zeros(1, 6, dtype=torch.long)}])


@pytest.fixture(scope="module")
def mqar_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("mqar")
    for mixer in ["attention", "global_conv"]:
        cfg = config.load(
            None,
            ["task.name=mqar", f"model.mixer={mixer}", "model.d_model=16", "model.n_layers=2",
             "train.steps=6", "train.batch_size=16"],
        )  # fmt: skip
        train(cfg, root / mixer, progress=False)
    return root


def test_a_trained_run_is_measured_per_layer_and_head(mqar_runs):
    measures = circulant.measure_run(mqar_runs / "attention", samples=20)
    assert len(measures) == 2 * 4  # 2 layers of 4 heads (the default)
    for m in measures:
        assert m.causal and m.structure == "toeplitz"
        assert (m.length, m.sequences) == (32, 20)
        for share in (m.circulant, m.toeplitz, m.input_dependent, m.fixed_share):
            assert 0 <= share <= 1 + 1e-9
        assert m.input_dependent > 0  # the maps depend on the tokens
    with pytest.raises(ValueError, match="samples"):
        circulant.measure_run(mqar_runs / "attention", samples=0)


def test_the_report_section_sets_the_measure_beside_the_verdict(mqar_runs, tmp_path):
    blocks = circulant.report_section(collect_runs(mqar_runs), samples=8)
    doc = Document("t")
    doc.add(*blocks)
    md = doc.markdown(tmp_path)
    assert "## How circulant is trained attention?" in md
    assert "| mqar | 2 | 16 | 1 | toeplitz |" in md
    row = next(line for line in md.splitlines() if line.startswith("| mqar | 2 | 16 | 1 |"))
    # one seed each: the verdict rule says numbers only, so no prediction is checked
    assert "too few seeds for a verdict" in row and row.endswith("| - / - |")
    header = next(line for line in md.splitlines() if line.startswith("| task | layers | width"))
    assert header.count("|") == row.count("|")  # every column has its header
    assert "cannot be checked against one" in md
    assert md.count("| mqar | attention | blocks.") == 8  # the per-head table
    assert circulant.report_section([]) == []


def judgement(task, shift, fixed, wins):
    return circulant.Judgement(task, 2, 64, shift, fixed, wins)


@dataclass
class FakeRun:
    label: str
    mixer: str
    score: float
    width: int = 64
    layers: int = 2
    metric: str = "accuracy"
    floor: float | None = 0.25


def test_the_verdict_beside_the_maps_is_the_reports_own_per_width():
    runs = [FakeRun("t", "attention", a) for a in (1.0, 0.99, 1.0)]
    runs += [FakeRun("t", "global_conv", a) for a in (0.27, 0.28, 0.29)]
    runs += [FakeRun("t", "attention", a, width=32) for a in (0.44, 0.97, 0.95)]
    runs += [FakeRun("t", "global_conv", a, width=32) for a in (0.27, 0.27, 0.27)]
    text, wins = circulant._conv_gap(runs, "t", 2, 64)
    assert wins is False and text.startswith("falls short of attention by 71.7 points")
    text, wins = circulant._conv_gap(runs, "t", 2, 32)  # a large gap, but not significant
    assert wins is None and text.startswith("indistinguishable from attention")
    assert circulant._conv_gap(runs, "t", 4, 64) is None


def test_the_agreement_paragraph_counts_both_predictions_and_names_the_cases():
    text = circulant.agreement(
        [judgement("a", 0.8, 0.2, True), judgement("b", 0.2, 0.1, False),
         circulant.Judgement("c", 2, 64, 0.9, 0.7, False, uniform=0.1,
                             mean_shift_invariant=0.9)]
    )  # fmt: skip
    assert "structure predicts 2 of 3 verdicts, the fixed-map share 1 of 3" in text
    assert "beats attention on a, attention's maps still vary" in text
    assert "a (2 layers, width 64): `global_conv` beats attention" in text
    assert "falls short (b)" in text and "On c the mean maps are shift-invariant" in text
    assert "c (uniform 10% of 90%: sharp, at fixed offsets)" in text
    assert "cannot be checked against one" in circulant.agreement([])
