import pytest

from globalconv import cli, mixers
from globalconv.analysis import suite
from globalconv.config import ConfigError


def test_quick_suite_is_parameter_matched_trio_on_three_task_families():
    runs = suite.plan("quick")
    names = [name for name, _, _ in runs]
    assert len(names) == 9 and "mqar/gated_global_conv-l2-s0" in names
    assert {cfg.task.name for _, _, cfg in runs} == {"mnist1d", "mqar", "text"}
    assert all(cfg.match.by == "params" for _, _, cfg in runs)


def test_full_suite_covers_every_mixer_where_it_can_run():
    runs = suite.plan("full", seeds=[0])
    by_task = {}
    for _, _, cfg in runs:
        by_task.setdefault(cfg.task.name + str(cfg.task.params), set()).add(cfg.model.mixer)
    mnist = next(v for k, v in by_task.items() if k.startswith("mnist1d{}"))
    assert mnist == set(mixers.available())
    mqar = next(v for k, v in by_task.items() if k.startswith("mqar"))
    assert "fnet" not in mqar and "attention" in mqar  # fnet cannot be causal


def test_depth_suite_sweeps_layers_flop_matched():
    runs = suite.plan("depth", task_labels=["mqar"], mixer_names=["global_conv"])
    assert [cfg.model.n_layers for _, _, cfg in runs] == [1, 2, 4, 8, 12, 24]
    assert all(cfg.match.by == "flops" for _, _, cfg in runs)
    chosen = suite.plan("depth", task_labels=["mqar"], mixer_names=["attention"], depths=[1, 3])
    assert [cfg.model.n_layers for _, _, cfg in chosen] == [1, 3]


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
    assert len(capsys.readouterr().out.splitlines()) == 9
    assert cli.main(["compare", "--suite", "nope"]) == 2
