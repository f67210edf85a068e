import pytest

from globalconv import cli, mixers
from globalconv.analysis import suite
from globalconv.config import ConfigError


def configs(cells):
    return [cell.config(point, cell.tune_seed) for cell in cells for point in cell.points()]


def test_quick_suite_is_parameter_matched_trio_on_three_task_families():
    cells = suite.plan("quick")
    names = [cell.name for cell in cells]
    assert len(names) == 9 and "mqar/gated_global_conv-l2" in names
    runs = configs(cells)
    assert {cfg.task.name for cfg in runs} == {"mnist1d", "mqar", "text"}
    assert all(cfg.match.by == "params" for cfg in runs)
    assert all(cfg.task.valid_fraction > 0 and cfg.train.eval_every > 0 for cfg in runs)
    assert {cfg.train.lr for cfg in runs} == set(suite.SUITES["quick"].grid["train.lr"])


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
    cells = suite.plan("depth", task_labels=["mqar"], mixer_names=["global_conv"], grid={})
    assert [cfg.model.n_layers for cfg in configs(cells)] == [1, 2, 4, 8, 12, 24]
    assert all(cfg.match.by == "flops" for cfg in configs(cells))
    chosen = suite.plan("depth", task_labels=["mqar"], mixer_names=["attention"], depths=[1, 3])
    assert [c.name for c in chosen] == ["mqar/attention-l1", "mqar/attention-l3"]


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
    assert len(capsys.readouterr().out.splitlines()) == 9 * 3  # 2 grid points + the seeds line
    assert cli.main(["compare", "--suite", "nope"]) == 2
