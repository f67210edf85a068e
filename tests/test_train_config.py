import pytest

from globalconv import cli
from globalconv import config as C


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["train.grad_accum=3"], "batch_size=64 is not divisible by grad_accum=3"),
        (["train.early_stopping.patience=3"], "needs evaluations: set train.eval_every > 0"),
        (
            ["train.early_stopping.bogus=1"],
            "unknown key 'train.early_stopping.bogus'; allowed here: patience",
        ),
        (["train.precision=fp16"], "train.precision: Input should be 'fp32' or 'bf16'"),
        (["train.schedule=linear"], "'cosine', 'constant' or 'inverse_sqrt'"),
        (["train.device=gpu"], "unknown device 'gpu'; allowed: cpu, cuda, cuda:N"),
        (["train.early_stopping.metric=f1"], "'loss', 'accuracy' or 'bits_per_token'"),
        (["train.betas=[0.9]"], "train.betas"),
        (["train.min_lr_ratio=2"], "train.min_lr_ratio"),
        (["match.by=size"], "'none', 'params' or 'flops'"),
        (["match.reference=nope"], "match.reference: unknown mixer 'nope'; available: attention"),
        (["match.dimension=heads"], "'width' or 'depth'"),
        (["match.tolerance=0"], "match.tolerance"),
        (["match.extra=1"], "unknown key 'match.extra'; allowed here: by, reference"),
    ],
)
def test_bad_training_configs_name_the_key_and_allowed_values(overrides, message):
    with pytest.raises(C.ConfigError, match=message.replace("[", r"\[")):
        C.load(None, overrides)


def test_nested_overrides_and_defaults():
    cfg = C.load(
        None,
        ["train.early_stopping.patience=2", "train.eval_every=10", "train.betas=[0.9, 0.98]"],
    )
    assert cfg.train.early_stopping.patience == 2 and cfg.train.betas == (0.9, 0.98)
    assert cfg.train.device == "cpu" and cfg.match.by == "none"


@pytest.mark.parametrize("command", ["train", "compare", "eval", "sweep", "runs"])
def test_every_command_has_help_with_examples(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main([command, "--help"])
    assert exit_.value.code == 0
    assert "examples:" in capsys.readouterr().out


def test_config_file_errors_exit_2(tmp_path, capsys):
    (tmp_path / "c.yaml").write_text("train:\n  grad_accum: 5\n")
    assert cli.main(["train", "-q", "-c", str(tmp_path / "c.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "grad_accum=5" in err


def test_example_configs_are_valid():
    from pathlib import Path

    from globalconv.train import sweep

    configs = Path(__file__).resolve().parents[1] / "configs"
    files = sorted(configs.glob("*.yaml"))
    assert files
    for path in files:
        data = C.load_file(path)
        if {"grid", "runs", "base"} & set(data):
            assert sweep.plan(*sweep.load_sweep(path)), path
        else:
            C.load(path)
