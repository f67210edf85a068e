import json
from pathlib import Path

import pytest

from globalconv import cli, mixers
from globalconv.analysis import suite
from globalconv.config import ConfigError


def configs(cells):
    return [cell.config(point, cell.tune_seed) for cell in cells for point in cell.points()]


def test_quick_suite_is_the_trio_on_the_studies_cells():
    cells = suite.plan("quick")
    names = [cell.name for cell in cells]
    assert len(names) == 6 and "mqar_32x4/gated_global_conv-l2" in names
    runs = configs(cells)
    assert {cfg.task.name for cfg in runs} == {"mnist1d", "mqar"}
    assert all(cfg.task.valid_fraction > 0 and cfg.train.eval_every > 0 for cfg in runs)
    assert all(c.grid == {} and c.fixed and c.fixed_from for c in cells)  # nothing tuned here


ROOT = Path(__file__).resolve().parents[2]
STUDY_OF = {"mnist1d": ("mnist1d", ""), "mqar_32x4": ("recall", "-d64")}  # quick label -> study


@pytest.mark.parametrize("label", list(suite.QUICK_CHOICES))
def test_quick_cells_are_the_studies_cells_at_their_chosen_rates(label):
    """The quick suite's shared cells train exactly the study's run at its first seed: the same
    request, and the values the committed selection.json chose."""
    study, width = STUDY_OF[label]
    for cell in suite.plan("quick", task_labels=[label]):
        mixer = cell.labels["model.mixer"]
        theirs = suite.plan(study, task_labels=[label], mixer_names=[mixer])
        theirs = next(c for c in theirs if c.name == f"{cell.name}{width}")
        record = ROOT / "results" / study / theirs.name / "selection.json"
        if not record.is_file():
            pytest.skip(f"{record} is not committed yet")
        chosen = json.loads(record.read_text())["chosen"]
        assert cell.fixed == chosen, f"QUICK_CHOICES[{label!r}][{mixer!r}] is not {chosen}"
        assert cell.config({}, 0) == theirs.config(chosen, theirs.tune_seed)


def test_a_fixed_choice_gives_way_to_an_override_or_an_explicit_grid():
    [cell] = suite.plan("quick", task_labels=["mqar_32x4"], mixer_names=["attention"])
    assert cell.grid == {} and cell.config({}, 0).train.lr == 3e-3
    [cell] = suite.plan("quick", task_labels=["mqar_32x4"], mixer_names=["attention"],
                        overrides=["train.lr=2e-3"])  # fmt: skip
    assert cell.fixed == {} and cell.config({}, 0).train.lr == 2e-3
    [cell] = suite.plan("quick", task_labels=["mqar_32x4"], mixer_names=["attention"],
                        grid={"train.lr": [1e-3, 1e-2]})  # fmt: skip
    assert cell.fixed == {} and cell.grid == {"train.lr": [1e-3, 1e-2]}


def test_full_suite_covers_every_mixer_where_it_can_run():
    cells = suite.plan("full", seeds=[0], grid={})
    by_task = {}
    for cfg in configs(cells):
        by_task.setdefault(cfg.task.name + str(cfg.task.params), set()).add(cfg.model.mixer)
    mnist = next(v for k, v in by_task.items() if k.startswith("mnist1d{}"))
    assert mnist == set(mixers.available())
    mqar = next(v for k, v in by_task.items() if k.startswith("mqar"))
    assert "fnet" not in mqar and "attention" in mqar  # fnet cannot be causal


def test_depth_suite_sweeps_layers_flop_matched():
    cells = suite.plan("depth", mixer_names=["global_conv"], grid={})
    assert [c.name for c in cells] == [
        *(f"mqar_32x4/global_conv-l{n}" for n in (1, 2, 4, 8, 12)),
        "mqar_32x4_prenorm/global_conv-l12",  # a task's own depths replace the suite's
    ]
    assert [cfg.model.norm for cfg in configs(cells)] == ["post"] * 5 + ["pre"]
    assert all(cfg.match.by == "flops" for cfg in configs(cells))
    chosen = suite.plan("depth", mixer_names=["attention"], depths=[1, 3])
    assert [c.name for c in chosen] == [  # depths given on the command line apply to every task
        f"{task}/attention-l{n}" for task in ("mqar_32x4", "mqar_32x4_prenorm") for n in (1, 3)
    ]
    assert len(chosen[0].points()) == 3 and chosen[0].seeds == (0, 1, 2)
    gated = suite.plan("depth", mixer_names=["gated_global_conv"], grid={})
    assert {c.name.split("/")[0] for c in gated} == {"mqar_32x4"}  # a task's own mixers


def test_recall_suite_crosses_widths_and_mnist1d_tunes_attention_positions():
    cells = suite.plan("recall", task_labels=["mqar_64x8"], mixer_names=["hyena"])
    assert [c.name for c in cells] == [f"mqar_64x8/hyena-l2-d{w}" for w in (32, 64)]
    assert {cfg.match.reference_d_model or cfg.model.d_model for cfg in configs(cells)} == {32, 64}
    mnist = suite.plan("mnist1d", task_labels=["mnist1d"], mixer_names=["attention", "fnet"])
    assert len(mnist[0].points()) == 6 and len(mnist[1].points()) == 3


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"mixer_names": ["nope"]}, "unknown mixer"),
        ({"task_labels": ["nope"]}, "has no task nope"),
        ({"overrides": ["train.lr=-1"]}, "train.lr"),
    ],
)
def test_bad_choices_are_clear_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        suite.plan("quick", **kwargs)
    with pytest.raises(ConfigError, match="unknown suite"):
        suite.plan("nope")


def test_cli_list_and_dry_run(capsys, tmp_path):
    assert cli.main(["compare", "--list"]) == 0
    assert "depth" in capsys.readouterr().out
    assert cli.main(["compare", "--dry-run", "--out", str(tmp_path)]) == 0
    # the 6 cells the studies chose for: their one run + the seeds line
    assert len(capsys.readouterr().out.splitlines()) == 6 * 2
    assert cli.main(["compare", "--suite", "nope"]) == 2
    # a study's cell: its three rates, the rates widening may add, the seeds line
    argv = ["compare", "--suite", "lm", "--mixers", "attention", "--dry-run", "--out"]
    argv.append(str(tmp_path))
    assert cli.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 5 and "train.lr in [0.0001, 0.0003, 0.03, 0.1]" in lines[3]
    assert cli.main([*argv, "--no-widen"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 4


@pytest.mark.parametrize("name", list(suite.SUITES))
def test_a_suites_own_depths_and_mixers_name_its_tasks_and_its_mixers(name):
    s = suite.SUITES[name]
    for own in (s.task_depths, s.task_mixers):
        assert set(own) <= set(s.tasks), f"{name}: unknown task label in {own}"
        assert all(own.values()), f"{name}: an empty list in {own}"
    for chosen in s.task_mixers.values():
        assert set(chosen) <= set(s.mixers or mixers.available())
