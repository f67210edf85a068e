import base64
import json
import re

import matplotlib.image as mpimg
import pytest

from globalconv import cli, config
from globalconv.analysis import report
from globalconv.core import io
from globalconv.train import train
from globalconv.train.summary import Summary

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for mixer in ["attention", "global_conv"]:
        for seed in [0, 1]:
            cfg = config.load(
                None,
                [
                    f"model.mixer={mixer}",
                    "model.d_model=16",
                    "model.n_layers=1",
                    "train.steps=4",
                    f"train.seed={seed}",
                ],
            )
            train(cfg, root / f"{mixer}-s{seed}", progress=False)
    return root


def test_report_builds_with_valid_pngs_and_self_contained_html(runs_dir, tmp_path):
    out = report.build_report(runs_dir, tmp_path / "r", width=32)
    md = (out / "report.md").read_text()
    for name in re.findall(r"\]\(([^)]+\.png)\)", md):
        path = out / name
        assert path.read_bytes()[:8] == PNG_MAGIC, name
        assert mpimg.imread(path).ndim == 3
    assert {
        "scores.png",
        "flops.png",
        "curves_mnist1d.png",
        "global_conv_kernel.png",
        "mixing_vs_attention.png",
    } <= {p.name for p in out.glob("*.png")}
    html = (out / "report.html").read_text()
    sources = re.findall(r'<img[^>]*src="([^"]+)"', html)
    assert len(sources) == md.count("![")
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == PNG_MAGIC
    assert "The answer, point by point" in md and "Zoology" in md and "54.39" in md
    assert "How circulant is trained attention?" in md and "Has this been studied?" in md


def test_benchmark_results_become_plots_and_a_table(runs_dir, tmp_path):
    bench = runs_dir / "bench.json"
    records = [
        {"name": n, "pass": "forward+backward", "L": L, "median_ms": t * L, "peak_mb": 1.0}
        for n, t in [("attention", 0.5), ("global_conv", 0.1)]
        for L in (64, 128, 256)
    ]
    records.append({"name": "attention", "L": 512, "stopped": "too slow"})
    bench.write_text(json.dumps({"device": "test CPU", "records": records}))
    try:
        out = report.build_report(runs_dir, tmp_path / "r", width=32)
    finally:
        bench.unlink()
    md = (out / "report.md").read_text()
    assert (out / "median_ms.png").is_file() and (out / "peak_mb.png").is_file()
    assert "| `global_conv` | 6.4 (5.0×) | 12.8 (5.0×) | 25.6 (5.0×) | 1.00 |" in md
    assert "`attention` stopped at L=512: too slow" in md and "test CPU" in md


def test_operator_benchmark_becomes_floor_and_breakdown_tables(runs_dir, tmp_path):
    """A `globalconv bench op --json` file alone: its floor ratios and its time split."""
    bench = runs_dir / "bench-op.json"
    row = {"mode": "circular", "L": 4096, "op_s": 0.03, "floor_s": 0.006}
    table = [row | {"native_s": 0.015, "mixer_s": 0.032, "attention_s": 1.6}]
    shares = {"transforms_share": 0.4, "layout_share": 0.4, "products_share": 0.1}
    breakdown = [row | shares | {"other_share": 0.1}]
    data = {"device": "cpu", "where": "test CPU", "batch": 4, "dim": 256}
    bench.write_text(json.dumps(data | {"table": table, "breakdown": breakdown}))
    try:
        md = (report.build_report(runs_dir, tmp_path / "r", width=32) / "report.md").read_text()
    finally:
        bench.unlink()
    assert "| circular | 4096 | 30 | 6 | 5.00 | 2.50 | 32 | 1.6e+03 | 50.00 |" in md
    assert "| circular | 4096 | 5.00 | 2.00 | 2.00 | 0.50 | 0.50 |" in md
    assert "test CPU" in md and "No benchmark results" not in md


def test_tables_come_from_the_runs(runs_dir, tmp_path):
    out = report.build_report(runs_dir, tmp_path / "before", width=32)
    assert "12.34 ±" not in (out / "report.md").read_text()
    summary_path = runs_dir / "global_conv-s0" / "summary.json"
    original = summary_path.read_text()
    try:
        for seed in (0, 1):
            path = runs_dir / f"global_conv-s{seed}" / "summary.json"
            data = json.loads(path.read_text())
            data["test_accuracy"] = 0.1234
            io.write_json(path, data, checksum=True)  # as the trainer writes it: checksummed
        md = (report.build_report(runs_dir, tmp_path / "after", width=32) / "report.md").read_text()
        assert "| mnist1d | `global_conv` | 1 | 16 | accuracy | 12.34 ± 0.00 (n=2) |" in md
    finally:
        io.write_text(summary_path, original, checksum=True)


def test_cli_report_and_errors(runs_dir, tmp_path, capsys):
    assert cli.main(["report", str(runs_dir), "--out", str(tmp_path / "cli"), "--width", "32"]) == 0
    assert (tmp_path / "cli" / "report.html").is_file()
    assert cli.main(["report", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert cli.main(["report", str(tmp_path / "empty")]) == 2
    assert "no runs under" in capsys.readouterr().err


def fake_run(mixer, layers, accuracy, seed=0, floor=0.1, label="t"):
    from pathlib import Path

    summary = {"task": label, "mixer": mixer, "metric": "accuracy", "test_accuracy": accuracy,
               "seed": seed, "baseline": {"value": floor, "what": "majority class"}}  # fmt: skip
    config = {"model": {"n_layers": layers}}
    return report.Run(Path(f"{mixer}-{layers}-{seed}"), Summary(**summary), config, [], [])


def cell(mixer, layers, scores, **kw):
    return [fake_run(mixer, layers, a, seed=i, **kw) for i, a in enumerate(scores)]


def test_answer_compares_mixers_at_equal_depth_by_the_stated_rule():
    runs = cell("attention", 1, [0.12, 0.11, 0.13]) + cell("global_conv", 1, [0.12, 0.1, 0.11])
    runs += cell("attention", 2, [1.0, 0.99, 1.0]) + cell("global_conv", 2, [0.3, 0.31, 0.29])
    points = report.answer(runs, width=16)
    assert any(
        p.startswith("t, 1 layer: `global_conv` and attention both stayed at the floor")
        for p in points
    )
    two = next(p for p in points if p.startswith("t, 2 layers"))
    assert "falls short of attention by 69.7 points" in two and "p=" in two


def test_one_seed_gets_numbers_and_no_verdict_word():
    runs = [fake_run("attention", 2, 0.9), fake_run("global_conv", 2, 0.5)]
    text = next(p for p in report.answer(runs, width=16) if "`global_conv`" in p)
    assert "too few seeds for a verdict" in text
    assert not any(w in text for w in ("beats", "falls short", "indistinguishable", "matches"))


def test_overlapping_seeds_are_indistinguishable_and_gating_is_only_credited_for_a_real_gap():
    runs = cell("attention", 2, [0.80, 0.90, 0.70]) + cell("global_conv", 2, [0.75, 0.85, 0.72])
    runs += cell("gated_global_conv", 2, [0.8, 0.8, 0.8])
    points = report.answer(runs, width=16)
    assert any("`global_conv` is indistinguishable from attention" in p for p in points)
    assert not any("gating" in p for p in points)


def test_gating_share_of_a_significant_gap():
    runs = cell("attention", 2, [0.9, 0.91, 0.89]) + cell("global_conv", 2, [0.5, 0.51, 0.49])
    runs += cell("gated_global_conv", 2, [0.7, 0.71, 0.69])
    points = report.answer(runs, width=16)
    assert any("gating (data-dependence) closes 50%" in p for p in points)


def test_gating_that_changes_nothing_significant_closes_none_of_the_gap():
    runs = cell("attention", 2, [0.99, 1.0, 1.0]) + cell("global_conv", 2, [0.27, 0.28, 0.29])
    runs += cell("gated_global_conv", 2, [0.265, 0.27, 0.275])  # within the plain one's noise
    points = report.answer(runs, width=16)
    text = next(p for p in points if "gating" in p)
    assert "does not significantly change" in text and "closes none" in text
    assert "%" not in text


def test_a_reference_study_is_shown_beside_each_fresh_cell(runs_dir, tmp_path):
    studies = tmp_path / "results"
    (studies / "study").mkdir(parents=True)
    import shutil

    shutil.copytree(runs_dir / "attention-s0", studies / "study" / "attention-s0")
    out = report.build_report(runs_dir, tmp_path / "r", width=32, reference=studies)
    md = (out / "report.md").read_text()
    assert "reference study (test)" in md and "(n=1) [study]" in md
    row = next(line for line in md.splitlines() if line.startswith("| mnist1d | `global_conv`"))
    assert row.endswith("| - |")  # no global_conv cell in the reference


def test_accuracy_against_width_is_drawn_only_when_a_task_has_two_widths(tmp_path):
    runs = []
    for width, accuracy in ((32, 0.3), (64, 0.9)):
        for run in cell("attention", 2, [accuracy, accuracy + 0.01]):
            run.config["model"]["d_model"] = width
            runs.append(run)
    assert report.plot_by_width(runs, tmp_path / "w.png") == tmp_path / "w.png"
    assert (tmp_path / "w.png").stat().st_size > 0
    assert report.plot_by_width(runs[:2], tmp_path / "one.png") is None


def test_depth_points_test_the_change_from_the_shallowest_to_the_deepest_model():
    f = {"floor": 0.25}
    runs = cell("attention", 1, [0.27, 0.26, 0.27], **f) + cell("attention", 4, [1, 0.99, 1], **f)
    runs += cell("global_conv", 1, [0.27, 0.28, 0.26], **f)
    runs += cell("global_conv", 4, [0.5, 0.52, 0.49], **f)
    runs += cell("gated_global_conv", 1, [0.26, 0.27, 0.26], **f)
    runs += cell("gated_global_conv", 4, [0.27, 0.26, 0.28], **f)
    points = report.answer(runs, width=16)
    conv = next(p for p in points if p.startswith("t: `global_conv` from 1 to 4 layers"))
    assert "1: 27.0%; 4: 50.3%" in conv and "depth improves it by 23.3 points" in conv
    gated = next(p for p in points if p.startswith("t: `gated_global_conv` from 1 to 4"))
    assert "within the chance margin of the floor at every depth" in gated
    few = cell("global_conv", 1, [0.3]) + cell("global_conv", 2, [0.6])
    assert "too few seeds" in report.answer(few, width=16)[0]


def test_a_model_that_collapsed_below_the_floor_is_not_said_to_be_at_it():
    f = {"floor": 0.25}
    runs = cell("attention", 1, [0.26, 0.27, 0.26], **f) + cell("attention", 12, [0.27] * 3, **f)
    runs += cell("gated_global_conv", 1, [0.26, 0.25, 0.26], **f)
    runs += cell("gated_global_conv", 12, [0.07, 0.03, 0.05], **f)  # worse than guessing
    points = report.answer(runs, width=16)
    deep = next(p for p in points if p.startswith("t, 12 layers: `gated_global_conv`"))
    assert "both did no better than the floor: neither learned" in deep
    assert "one did worse: 5.0% against attention's 27.0%" in deep
    assert "within the chance margin" not in deep
    both = cell("attention", 12, [0.04, 0.05, 0.06], **f) + cell("global_conv", 12, [0.1] * 3, **f)
    assert "and both did worse: 10.0% against attention's 5.0%" in report.answer(both, width=16)[0]
    trend = next(p for p in points if p.startswith("t: `gated_global_conv` from 1 to 12"))
    assert trend.endswith("never clear of the chance margin of the floor, and worse than it at "
                          "12 layers.")  # fmt: skip


def test_depth_names_a_best_depth_between_the_ends_and_says_when_both_ends_sit_at_the_floor():
    f = {"floor": 0.25}
    runs = cell("attention", 1, [0.26, 0.27, 0.26], **f) + cell("attention", 12, [0.27] * 3, **f)
    runs += cell("attention", 2, [1.0, 0.99, 1.0], **f) + cell(
        "attention", 4, [1.0, 1.0, 0.99], **f
    )
    runs += cell("global_conv", 1, [0.5, 0.52, 0.49], **f)
    runs += cell("global_conv", 2, [0.9], **f)  # one seed: not enough to name a best depth
    runs += cell("global_conv", 4, [0.9, 0.91, 0.9], **f)
    runs += cell("global_conv", 8, [0.9, 0.9, 0.91], **f)  # a middle depth only ties the end
    points = report.answer(runs, width=16)
    att = next(p for p in points if p.startswith("t: `attention` from 1 to 12"))
    assert (
        "within the chance margin of the floor at 1 and 12 layers; clear of it only at 2, 4" in att
    )
    assert att.endswith("its best depth lies between them: 2 layers (99.7%); 4 layers (99.7%).")
    assert "depth does not change it" not in att and "improves" not in att
    conv = next(p for p in points if p.startswith("t: `global_conv` from 1 to 8"))
    assert conv.endswith("depth improves it by 40.0 points (p=0.0001).")  # no best-depth clause
    bits = [bits_run("global_conv", n, b, i) for n, m in ((1, 2.5), (4, 2.0), (8, 2.5))
            for i, b in enumerate((m, m + 0.01, m - 0.01))]  # fmt: skip
    mid = next(p for p in report.answer(bits, width=16) if "`global_conv` from 1 to 8" in p)
    assert mid.endswith("its best depth lies between them: 4 layers (2.000 bits).")  # lower wins


def test_in_short_states_the_seed_operators_verdicts_and_what_gating_and_depth_recover():
    runs = cell("attention", 2, [0.9, 0.91, 0.89]) + cell("global_conv", 2, [0.5, 0.51, 0.49])
    runs += cell("gated_global_conv", 2, [0.7, 0.71, 0.69])
    runs += cell("attention", 2, [0.5, 0.52, 0.5], label="u")
    runs += cell("global_conv", 2, [0.8, 0.81, 0.8], label="u")
    _, summary = report.answer_and_summary(runs, width=16)
    assert summary.startswith("In short, for the seed's operator (`global_conv`): It beats")
    assert "It beats attention on u (by 29.7 points)." in summary
    assert "It falls short of attention on t (by 40.0 points)." in summary
    assert "gating (`gated_global_conv`) closes 50% of it on t." in summary
    one = [fake_run("attention", 2, 0.9), fake_run("global_conv", 2, 0.5)]
    assert "too few seeds for a verdict on t." in report.answer_and_summary(one, width=16)[1]
    assert report.answer_and_summary(cell("attention", 2, [0.9]), width=16)[1] == ""


def test_accuracy_against_depth_is_drawn_only_when_a_task_has_two_depths(tmp_path):
    runs = cell("attention", 1, [0.3, 0.31]) + cell("attention", 2, [0.9, 0.91])
    assert report.plot_by_depth(runs, tmp_path / "d.png") == tmp_path / "d.png"
    assert mpimg.imread(tmp_path / "d.png").ndim == 3
    assert report.plot_by_depth(runs[:2], tmp_path / "one.png") is None


def bits_run(mixer, layers, bits, seed):
    from pathlib import Path

    summary = {"task": "lm", "mixer": mixer, "metric": "bits_per_token", "test_bits_per_token":
               bits, "seed": seed, "baseline": {"value": 8.0, "what": "uniform"}}  # fmt: skip
    return report.Run(Path(f"{mixer}-{layers}-{seed}"), Summary(**summary),
                      {"model": {"n_layers": layers}}, [], [])  # fmt: skip


def test_depth_and_gating_on_bits_say_lower_is_better_with_units():
    runs = [bits_run("global_conv", 1, b, i) for i, b in enumerate((2.5, 2.52, 2.49))]
    runs += [bits_run("global_conv", 4, b, i) for i, b in enumerate((2.1, 2.12, 2.09))]
    runs += [bits_run("gated_global_conv", 1, b, i) for i, b in enumerate((2.8, 2.82, 2.79))]
    runs += [bits_run("gated_global_conv", 4, b, i) for i, b in enumerate((2.9, 2.92, 2.89))]
    points = report.answer(runs, width=16)
    assert any("`global_conv` from 1 to 4" in p and "depth improves it by 0.400 bits" in p
               for p in points)  # fmt: skip
    assert any("`gated_global_conv` from 1 to 4" in p and "depth worsens it by 0.100 bits" in p
               for p in points)  # fmt: skip
    runs = [bits_run("attention", 2, b, i) for i, b in enumerate((2.0, 2.01, 2.02))]
    runs += [bits_run("global_conv", 2, b, i) for i, b in enumerate((2.5, 2.51, 2.52))]
    runs += [bits_run("gated_global_conv", 2, b, i) for i, b in enumerate((2.51, 2.49, 2.53))]
    text = next(p for p in report.answer(runs, width=16) if "gating" in p)
    assert "difference +0.000 bits" in text or "difference -0.000 bits" in text


def test_in_short_carries_the_caveats_and_the_seed_rule_comes_before_the_floor():
    runs = cell("attention", 2, [0.44, 0.97, 0.95]) + cell("global_conv", 2, [0.27, 0.26, 0.28])
    _, summary = report.answer_and_summary(runs, width=16)
    assert (
        "It is indistinguishable from attention on t (difference" in summary and "p=0." in summary
    )
    near = [
        fake_run("attention", 2, 0.26, floor=0.25),
        fake_run("global_conv", 2, 0.27, floor=0.25),
    ]
    text = next(p for p in report.answer(near, width=16) if "`global_conv`" in p)
    assert "too few seeds for a verdict" in text and "neither" not in text
    runs = cell("attention", 1, [0.9, 0.91, 0.89]) + cell("attention", 4, [0.9, 0.92, 0.9])
    runs += cell("global_conv", 1, [0.3, 0.31, 0.29]) + cell("global_conv", 4, [0.6, 0.62, 0.6])
    runs += cell("gated_global_conv", 1, [0.3, 0.3, 0.31])
    runs += cell("gated_global_conv", 4, [0.3, 0.32, 0.31])
    _, summary = report.answer_and_summary(runs, width=16)
    assert "`global_conv` from 1 to 4 layers" in summary
    assert "`gated_global_conv` from 1 to 4" not in summary


def test_gating_that_widens_the_gap_is_said_so():
    runs = cell("attention", 2, [0.9, 0.91, 0.89]) + cell("global_conv", 2, [0.5, 0.51, 0.49])
    runs += cell("gated_global_conv", 2, [0.3, 0.31, 0.29])
    points = report.answer(runs, width=16)
    assert any("gating (data-dependence) widens attention's significant lead over the plain "
               "global convolution by 50%" in p for p in points)  # fmt: skip


def test_no_gating_share_where_attention_and_the_convolution_both_sit_at_the_floor():
    f = {"floor": 0.25}
    runs = cell("attention", 1, [0.27, 0.275, 0.272], **f)
    runs += cell("global_conv", 1, [0.254, 0.25, 0.252], **f)  # significantly lower, yet at floor
    runs += cell("gated_global_conv", 1, [0.25, 0.248, 0.249], **f)
    points = report.answer(runs, width=16)
    assert any("and attention both stayed at the floor" in p for p in points)
    assert not any("gating" in p for p in points)
