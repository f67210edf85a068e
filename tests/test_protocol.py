"""The comparison protocol: grid on validation, selection that never reads test, then seeds."""

import json

import pytest

from globalconv import cli
from globalconv.analysis import report, suite, verdicts
from globalconv.core import io
from globalconv.train import protocol
from globalconv.train.summary import Summary

BASE = {
    "task": {"name": "mqar", "params": {"num_train": 200, "num_test": 50}, "valid_fraction": 0.2},
    "model": {"mixer": "attention", "d_model": 16, "n_layers": 1},
    "train": {"steps": 4, "batch_size": 16, "threads": 1, "eval_every": 2},
}


def planted_train(valid_by_lr, test_by_lr, calls):
    """A stand-in trainer: each lr gets the planted validation and test accuracies."""

    def train(cfg, run_dir, *, progress=True, resume=False, overwrite=False):
        calls.append((cfg.train.lr, cfg.train.seed))
        lr = cfg.train.lr
        summary = {
            "task": "mqar", "mixer": cfg.model.mixer, "metric": "accuracy", "seed": cfg.train.seed,
            "steps": 4, "valid_accuracy": valid_by_lr[lr], "valid_loss": 1.0,
            "test_accuracy": test_by_lr[lr] + 0.001 * cfg.train.seed,
            "baseline": {"value": 0.25, "what": "random value"},
        }  # fmt: skip
        io.write_json(run_dir / "config.json", cfg.model_dump(mode="json"))
        io.write_json(run_dir / "summary.json", summary)
        return Summary(**summary)

    return train


def test_selection_takes_the_best_validation_point_never_the_best_test_point(tmp_path, monkeypatch):
    from globalconv.train import loop

    valid = {1e-3: 0.9, 3e-3: 0.6, 1e-2: 0.5}
    test = {1e-3: 0.7, 3e-3: 0.99, 1e-2: 0.4}  # 3e-3 would win on test
    calls = []
    monkeypatch.setattr(loop, "train", planted_train(valid, test, calls))
    cell = protocol.Cell("mqar/attention-l1", BASE, {"train.lr": [1e-3, 3e-3, 1e-2]}, (0, 1, 2))
    summary = protocol.run([cell], tmp_path, progress=False, echo=lambda *_: None)
    record = json.loads((tmp_path / "mqar/attention-l1" / protocol.SELECTION).read_text())
    assert record["chosen"] == {"train.lr": 1e-3}
    assert record["at_edge"] == ["train.lr"]  # the smallest rate tried won: widen the grid
    assert record["final_runs"] == ["lr=0.001-s0", "lr=0.001-s1", "lr=0.001-s2"]
    # the grid at seed 0, then only the chosen point for the other seeds (seed 0 reused)
    assert sorted(calls) == sorted([(1e-3, 0), (3e-3, 0), (1e-2, 0), (1e-3, 1), (1e-3, 2)])
    assert [r["summary"].test_accuracy for r in summary["runs"]] == pytest.approx(
        [0.7, 0.701, 0.702]
    )
    # the report reads the same choice: only the chosen runs give test numbers
    runs = report.collect_runs(tmp_path)
    results = [r for r in runs if r.role == "result"]
    assert {r.lr for r in results} == {1e-3} and len(results) == 3
    assert {r.lr for r in runs if r.role == "tuning"} == {3e-3, 1e-2}
    # rerunning trains nothing: every run is read back
    calls.clear()
    protocol.run([cell], tmp_path, progress=False, echo=lambda *_: None)
    assert calls == []


def test_select_ignores_test_and_failed_points_and_breaks_ties_by_validation_loss():
    points = [
        {"settings": {"lr": 1}, "valid": {"valid_accuracy": 1.0, "valid_loss": 0.2}},
        {"settings": {"lr": 2}, "valid": {"valid_accuracy": 1.0, "valid_loss": 0.1}},
        {"settings": {"lr": 3}, "error": "DivergedError"},
    ]
    assert protocol.select(points, "accuracy")["settings"] == {"lr": 2}
    bits = [
        {"settings": {"lr": 1}, "valid": {"valid_bits_per_token": 2.0}},
        {"settings": {"lr": 2}, "valid": {"valid_bits_per_token": 1.5}},
    ]
    assert protocol.select(bits, "bits_per_token")["settings"] == {"lr": 2}
    assert protocol.select([points[2]], "accuracy") is None
    summary = Summary(task="t", mixer="m", valid_accuracy=0.5, test_accuracy=0.9, valid_loss=1.0,
                      seed=3)  # fmt: skip
    assert protocol.validation_scores(summary) == {"valid_accuracy": 0.5, "valid_loss": 1.0}


def test_edges_of_the_grid():
    grid = {"train.lr": [1e-3, 3e-3, 1e-2], "model.norm": ["pre", "post"]}
    assert protocol.at_edge(grid, {"train.lr": 3e-3, "model.norm": "pre"}) == []
    assert protocol.at_edge(grid, {"train.lr": 1e-2, "model.norm": "pre"}) == ["train.lr"]


def test_a_choice_at_the_edge_widens_the_grid_until_it_lies_inside(tmp_path, monkeypatch):
    from globalconv.train import loop

    # validation keeps improving up to 3e-2, then falls: the grid grows by 3e-2 and 1e-1
    valid = {1e-3: 0.3, 3e-3: 0.5, 1e-2: 0.7, 3e-2: 0.8, 1e-1: 0.6}
    test = {lr: v - 0.05 for lr, v in valid.items()}
    calls = []
    monkeypatch.setattr(loop, "train", planted_train(valid, test, calls))
    widen = {"train.lr": [1e-4, 3e-4, 3e-2, 1e-1, 3e-1]}
    cell = protocol.Cell("mqar/attention-l1", BASE, {"train.lr": [1e-3, 3e-3, 1e-2]}, (0, 1),
                         widen=widen)  # fmt: skip
    summary = protocol.run([cell], tmp_path, progress=False, echo=lambda *_: None)
    record = json.loads((tmp_path / "mqar/attention-l1" / protocol.SELECTION).read_text())
    assert record["chosen"] == {"train.lr": 3e-2}
    assert record["grid"] == {"train.lr": [1e-3, 3e-3, 1e-2, 3e-2, 1e-1]}
    assert record["widened"] == {"train.lr": [3e-2, 1e-1]}
    assert record["at_edge"] == []
    # tuning at seed 0 (3e-1 never needed), then the chosen point's second seed
    assert calls == [(1e-3, 0), (3e-3, 0), (1e-2, 0), (3e-2, 0), (1e-1, 0), (3e-2, 1)]
    assert [r["summary"].test_accuracy for r in summary["runs"]] == pytest.approx([0.75, 0.751])
    assert "lr=0.03, lr=0.1" in report.tuning_table([record]).rows[0][-1]
    # the widened tree reads back whole: nothing trains again
    calls.clear()
    protocol.run([cell], tmp_path, progress=False, echo=lambda *_: None)
    assert calls == []


@pytest.mark.parametrize("failure", ["DivergedError", "RuntimeError"])
def test_a_widened_rate_that_diverged_bounds_the_grid_but_a_crash_does_not(
    failure, tmp_path, monkeypatch
):
    from globalconv.core.errors import DivergedError
    from globalconv.train import loop

    valid = {1e-3: 0.3, 3e-3: 0.5, 1e-2: 0.7}
    calls = []
    planted = planted_train(valid, valid, calls)

    def train(cfg, run_dir, **kwargs):
        if cfg.train.lr == 3e-2:
            calls.append((cfg.train.lr, cfg.train.seed))
            raise (DivergedError if failure == "DivergedError" else RuntimeError)("at 3e-2")
        return planted(cfg, run_dir, **kwargs)

    monkeypatch.setattr(loop, "train", train)
    cell = protocol.Cell("mqar/attention-l1", BASE, {"train.lr": [1e-3, 3e-3, 1e-2]}, (0,),
                         widen={"train.lr": [3e-2, 1e-1]})  # fmt: skip
    protocol.run([cell], tmp_path, progress=False, echo=lambda *_: None)
    record = json.loads((tmp_path / "mqar/attention-l1" / protocol.SELECTION).read_text())
    assert record["chosen"] == {"train.lr": 1e-2} and (3e-2, 0) in calls
    assert (1e-1, 0) not in calls  # a divergence bounds the search; a crash stops the widening
    # only the divergence says 1e-2 is inside the grid; beside a crash it is still the edge
    assert record["at_edge"] == ([] if failure == "DivergedError" else ["train.lr"])


def test_a_run_widening_would_reuse_is_checked_before_anything_trains(tmp_path, monkeypatch):
    from globalconv.train import loop

    calls = []
    monkeypatch.setattr(loop, "train", planted_train({}, {}, calls))
    cell = protocol.Cell("mqar/attention-l1", BASE, {"train.lr": [1e-3, 3e-3]}, (0,),
                         widen={"train.lr": [1e-2]})  # fmt: skip
    other = protocol.Cell("mqar/attention-l1", {**BASE, "train": {**BASE["train"], "steps": 8}})
    stale = tmp_path / cell.run_name({"train.lr": 1e-2}, 0)
    stale.mkdir(parents=True)
    io.write_json(
        stale / "config.json", other.config({"train.lr": 1e-2}, 0).model_dump(mode="json")
    )
    io.write_json(stale / "summary.json", {"task": "mqar", "mixer": "attention", "steps": 8})
    with pytest.raises(protocol.ConfigError, match="another config"):
        protocol.run([cell], tmp_path, progress=False, echo=lambda *_: None)
    assert calls == []


def test_widening_stops_where_its_values_run_out_and_goes_down_too():
    cell = protocol.Cell("c", BASE, {"train.lr": [1e-3, 3e-3]}, widen={"train.lr": [1e-4, 3e-4]})
    lower = cell.widened({"train.lr": 1e-3}, ["train.lr"])
    assert lower.grid == {"train.lr": [3e-4, 1e-3, 3e-3]}  # the nearest value below, only
    assert cell.widened({"train.lr": 3e-3}, ["train.lr"]) is None  # nothing above 3e-3 to try
    assert cell.widened({"train.lr": 1e-3}, []) is None  # inside the grid
    # with a second axis, each widening value comes with every value of the other
    two = protocol.Cell("c", BASE, {"train.lr": [1e-3], "model.norm": ["pre", "post"]},
                        widen={"train.lr": [3e-3]})  # fmt: skip
    assert two.widening_points() == [{"model.norm": "pre", "train.lr": 3e-3},
                                     {"model.norm": "post", "train.lr": 3e-3}]  # fmt: skip
    with pytest.raises(protocol.ConfigError, match="not a grid axis"):
        protocol.Cell("c", BASE, {"train.lr": [1e-3]}, widen={"train.wd": [0.1]}).validate()


def test_the_studies_widen_their_learning_rate_grid_but_an_explicit_grid_is_exact():
    (cell,) = suite.plan("lm", mixer_names=["attention"])
    assert cell.widen == suite.WIDEN_LR
    (exact,) = suite.plan("lm", mixer_names=["attention"], grid={"train.lr": [1e-3, 3e-3]})
    assert exact.widen == {}
    (off,) = suite.plan("lm", mixer_names=["attention"], widen=False)
    assert off.widen == {}


def test_a_real_tiny_comparison_end_to_end(tmp_path, capsys):
    """compare with a two-point grid and two seeds: tuning, selection, seeds, report."""
    out = tmp_path / "cmp"
    args = ["compare", "--suite", "quick", "--tasks", "mqar_32x4",
            "--mixers", "attention,global_conv", "--seeds", "0,1", "--grid", "train.lr=1e-3,3e-3",
            "--steps", "6", "--out", str(out),
            "-q", "model.d_model=16", "task.params.num_train=300", "task.params.num_test=60",
            "train.batch_size=16"]  # fmt: skip
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    assert "validation" in printed and "chosen" in printed
    for mixer in ("attention", "global_conv"):
        record = json.loads((out / f"mqar_32x4/{mixer}-l2" / protocol.SELECTION).read_text())
        assert len(record["points"]) == 2 and len(record["final_runs"]) == 2
        assert all("test_accuracy" not in p["valid"] for p in record["points"])
        chosen = out / f"mqar_32x4/{mixer}-l2" / record["final_runs"][1]
        summary = json.loads((chosen / "summary.json").read_text())
        assert summary["splits"]["valid"] > 0 and summary["baseline"]["value"] == 0.25
    md = (report.build_report(out, tmp_path / "report", width=16) / "report.md").read_text()
    assert "Tuning on validation" in md and verdicts.RULE[:40] in md
    assert "too few seeds for a verdict" in md or "and attention both stayed at the floor" in md


def test_an_override_of_a_tuned_key_fixes_it():
    cells = suite.plan("lm", mixer_names=["attention"], overrides=["train.lr=2e-3"])
    assert cells[0].grid == {} and cells[0].config({}, 0).train.lr == 2e-3
    tuned = suite.plan("lm", mixer_names=["attention"])
    assert tuned[0].grid == suite.SUITES["lm"].grid


def test_still_improving_reads_the_last_fifth_of_the_validation_curve():
    flat = [(0, 0.2), (400, 0.8), (800, 0.90), (1000, 0.905)]
    rising = [(0, 0.2), (400, 0.6), (800, 0.70), (1000, 0.75)]
    assert verdicts.still_improving(flat, 1000, "accuracy") is False
    assert verdicts.still_improving(rising, 1000, "accuracy") is True
    assert verdicts.still_improving([(1000, 0.9)], 1000, "accuracy") is None
    bits = [(800, 2.0), (1000, 1.95)]  # 2.5% lower: still improving
    assert verdicts.still_improving(bits, 1000, "bits_per_token") is True


def test_welch_matches_scipy_and_handles_identical_seeds():
    from scipy import stats

    a, b = [0.5, 0.52, 0.49], [0.6, 0.65, 0.58]
    diff, p, half = verdicts.welch(a, b)
    assert p == pytest.approx(stats.ttest_ind(b, a, equal_var=False).pvalue)
    assert diff == pytest.approx(0.61 - 0.5033333, abs=1e-6) and half > 0
    assert verdicts.welch([1.0] * 3, [1.0] * 3)[1] == 1.0
    assert verdicts.welch([1.0] * 3, [0.5] * 3)[1] == 0.0
    lower = verdicts.compare([2.0, 2.01, 1.99], [1.5, 1.51, 1.49], metric="bits_per_token", floor=5)
    assert lower.word == "beats"  # fewer bits is better
