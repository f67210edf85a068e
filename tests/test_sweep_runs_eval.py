import json
import math

import pytest

from globalconv import cli
from globalconv import config as C
from globalconv.train import checkpoint, sweep, train
from globalconv.train.evaluation import evaluate_run
from globalconv.train.summary import Summary

TINY = {
    "model": {"d_model": 16, "n_layers": 1},
    "train": {"steps": 2, "batch_size": 32, "warmup_steps": 1, "threads": 1},
    "task": {"params": {"valid_fraction": 0.1}},  # the data other test files use (cached)
}


def test_grid_and_list_expand_to_named_validated_runs(tmp_path):
    s = sweep.SweepConfig(
        base=TINY,
        grid={"model.mixer": ["attention", "global_conv"], "train.seed": [0, 1, 2]},
        runs=[{"train.lr": 1e-3}, {"train.lr": 3e-3}],
    )
    runs = sweep.plan(s)
    assert len(runs) == 12
    name, settings, cfg = runs[0]
    assert name == "lr=0.001,mixer=attention,seed=0"
    assert cfg.train.lr == 1e-3 and cfg.model.mixer == "attention" and cfg.model.d_model == 16
    bad = sweep.SweepConfig(base=TINY, grid={"model.mixer": ["attention", "nope"]})
    with pytest.raises(C.ConfigError, match=r"sweep run mixer=nope: model.mixer: unknown mixer"):
        sweep.plan(bad)


def test_sweep_file_errors_name_the_key(tmp_path):
    (tmp_path / "s.yaml").write_text("grid: {train.seed: [0]}\nbogus: 1\n")
    with pytest.raises(C.ConfigError, match="unknown key 'bogus'; allowed: base, grid"):
        sweep.load_sweep(tmp_path / "s.yaml")


def test_mean_and_sample_std_over_seeds():
    m = sweep.mean_std([0.5, 0.7, 0.9])
    assert m["mean"] == pytest.approx(0.7) and m["std"] == pytest.approx(0.2) and m["n"] == 3
    assert sweep.mean_std([0.4]) == {"mean": 0.4, "std": None, "n": 1}
    entries = [
        {
            "name": f"seed={s}",
            "settings": {"model.mixer": "attention", "train.seed": s},
            "summary": Summary(
                task="t",
                mixer="attention",
                metric="accuracy",
                params=10,
                seed=s,
                test_accuracy=acc,
                test_loss=1.0,
            ),
        }
        for s, acc in [(0, 0.5), (1, 0.7), (2, 0.9)]
    ]
    (group,) = sweep.aggregate(entries)
    assert group["n"] == 3 and group["seeds"] == [0, 1, 2] and group["group"] == "mixer=attention"
    assert group["metrics"]["test_accuracy"]["std"] == pytest.approx(0.2)
    assert "0.7000 ± 0.2000" in sweep.groups_table([group])


def test_sweep_runs_skips_finished_and_resumes_partial(tmp_path, capsys):
    (tmp_path / "base.yaml").write_text(json.dumps(TINY))
    (tmp_path / "s.yaml").write_text(
        "base: base.yaml\ngrid:\n  train.seed: [0, 1]\nout: " + str(tmp_path / "out") + "\n"
    )
    assert cli.main(["sweep", "-q", "-s", str(tmp_path / "s.yaml")]) == 0
    first = capsys.readouterr().out
    assert "[run] seed=0" in first and "[run] seed=1" in first and " ± " in first
    summary = json.loads((tmp_path / "out" / "sweep_summary.json").read_text())
    (group,) = summary["groups"]
    accs = [r["summary"]["test_accuracy"] for r in summary["runs"]]
    assert group["metrics"]["test_accuracy"]["mean"] == pytest.approx(sum(accs) / 2)
    # a third seed: the two finished runs are skipped, not retrained
    stamp = (tmp_path / "out" / "seed=0" / "summary.json").stat().st_mtime_ns
    args = ["sweep", "-q", "-s", str(tmp_path / "s.yaml"), "--seeds", "0,1,2"]
    assert cli.main(args) == 0
    second = capsys.readouterr().out
    assert "[skip] seed=0" in second and "[skip] seed=1" in second and "[run] seed=2" in second
    assert (tmp_path / "out" / "seed=0" / "summary.json").stat().st_mtime_ns == stamp
    # a run with a checkpoint but no summary resumes
    (tmp_path / "out" / "seed=2" / "summary.json").unlink()
    assert cli.main(args) == 0
    assert "[resume] seed=2" in capsys.readouterr().out
    assert cli.main(["sweep", "-s", str(tmp_path / "s.yaml"), "--dry-run"]) == 0
    assert capsys.readouterr().out.count("done") == 2


def test_parallel_sweep(tmp_path):
    runs = sweep.plan(sweep.SweepConfig(base=TINY, grid={"train.seed": [0, 1]}))
    summary = sweep.run_sweep(runs, tmp_path, jobs=2, progress=False, echo=lambda m: None)
    assert [r["status"] for r in summary["runs"]] == ["done", "done"]
    for name in ("seed=0", "seed=1"):
        assert (tmp_path / name / "summary.json").is_file()


def test_runs_table_shows_finished_partial_and_broken_runs(tmp_path, capsys):
    cfg = C.parse(TINY)
    train(cfg, tmp_path / "done", progress=False)
    train(cfg, tmp_path / "partial", progress=False)
    (tmp_path / "partial" / "summary.json").unlink()
    meta, state = checkpoint.load(tmp_path / "partial" / "checkpoint.pt")
    checkpoint.save(tmp_path / "partial" / "checkpoint.pt", state, {**meta, "step": 1})
    train(cfg, tmp_path / "broken", progress=False)
    (tmp_path / "broken" / "summary.json").unlink()
    (tmp_path / "broken" / "checkpoint.pt").write_bytes(b"junk")
    assert cli.main(["runs", str(tmp_path)]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[2:]}
    assert " done " in lines["done"] and "accuracy: 0." in lines["done"]
    assert "step 1/2" in lines["partial"] and "bad checkpoint" in lines["broken"]
    assert cli.main(["runs", str(tmp_path / "missing")]) == 2


def test_eval_reproduces_the_saved_metrics(tmp_path, capsys):
    cfg = C.parse(TINY)
    s = train(cfg, tmp_path / "r", progress=False)
    result = evaluate_run(tmp_path / "r")
    assert result["results"]["test"]["accuracy"] == s.test_accuracy
    assert math.isclose(result["results"]["test"]["loss"], s.test_loss, rel_tol=1e-6)
    shuffled = evaluate_run(tmp_path / "r", ["task.params.shuffled=true"])
    assert shuffled["task_params"]["shuffled"] is True
    assert cli.main(["eval", str(tmp_path / "r"), "--split", "test"]) == 0
    assert (tmp_path / "r" / "eval-L40.json").is_file()
    capsys.readouterr()
    assert cli.main(["eval", str(tmp_path / "r"), "--length", "80"]) == 2
    assert "has no length parameter" in capsys.readouterr().err
    assert cli.main(["eval", str(tmp_path / "r"), "model.d_model=8"]) == 2
    assert "eval changes task settings only" in capsys.readouterr().err
    assert cli.main(["eval", str(tmp_path / "nothing")]) == 2


@pytest.fixture
def toy_task():
    """A throwaway task with a length parameter: classify the first token of a sequence."""
    import torch

    from globalconv.tasks import Split, Task, TaskParams, TaskSpec, base

    class Params(TaskParams):
        seq_len: int = 16

    class FirstToken(Task):
        name = "_first_token"

        @property
        def spec(self):
            return TaskSpec(max_len=self.params.seq_len, num_outputs=4, vocab_size=4)

        def splits(self):
            g = self.generator()
            make = lambda n: torch.randint(0, 4, (n, self.params.seq_len), generator=g)  # noqa: E731
            train_x, test_x = make(64), make(64)
            return {"train": Split(train_x, train_x[:, 0]), "test": Split(test_x, test_x[:, 0])}

    FirstToken.Params = Params
    base.register_task("_first_token")(FirstToken)
    yield "_first_token"
    base._REGISTRY.unregister("_first_token")


def test_eval_at_another_length(tmp_path, toy_task):
    def run(mixer):
        cfg = C.parse(
            {**TINY, "task": {"name": toy_task}, "model": {**TINY["model"], "mixer": mixer}}
        )
        train(cfg, tmp_path / mixer, progress=False)
        return tmp_path / mixer

    attention = run("attention")  # no length-shaped parameters: runs at any length
    longer = evaluate_run(attention, length=32)
    assert longer["seq_len"] == 32 and longer["trained_seq_len"] == 16
    assert longer["task_params"]["seq_len"] == 32
    conv = run("global_conv")  # an explicit kernel of 16 taps
    assert evaluate_run(conv, length=8)["seq_len"] == 8  # shorter: the first 8 taps
    with pytest.raises(
        ValueError, match="does not fit task '_first_token'.*length 32, trained at 16"
    ):
        evaluate_run(conv, length=32)
