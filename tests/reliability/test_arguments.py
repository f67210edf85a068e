"""No argument is dropped (issue class 5): overrides anywhere on the line, --resume with --out."""

import pytest

from globalconv import cli


@pytest.mark.parametrize(
    "argv, overrides",
    [
        (["train", "task.name=mqar", "-q", "train.steps=5"], ["task.name=mqar", "train.steps=5"]),
        (["train", "-q", "a.b=1", "--out", "x", "c.d=2"], ["a.b=1", "c.d=2"]),
        (
            ["compare", "--steps", "5", "model.d_model=8", "--jobs", "2", "x.y=1"],
            ["model.d_model=8", "x.y=1"],
        ),
        (["sweep", "a.b=1", "--jobs", "2", "c.d=2"], ["a.b=1", "c.d=2"]),
        (["eval", "run", "--length", "8", "task.params.seed=1"], ["task.params.seed=1"]),
    ],
)
def test_overrides_after_options_are_kept_in_order(argv, overrides):
    assert cli.parse_args(argv).overrides == overrides


@pytest.mark.parametrize(
    "argv", [["train", "-q", "--bogus"], ["runs", "d", "x=1"], ["report", "d", "a.b=1"]]
)
def test_what_is_not_an_override_is_still_refused(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.parse_args(argv)
    assert exit_.value.code == 2 and "unrecognized arguments" in capsys.readouterr().err


def test_overrides_after_an_option_reach_the_run(tmp_path):
    out = tmp_path / "run"
    argv = ["train", "task.name=parity", "-q", "task.params.seq_len=8", "--out", str(out)]
    argv += ["task.params.num_train=32", "task.params.num_test=16", "model.d_model=8"]
    argv += ["train.steps=2", "train.batch_size=16", "train.warmup_steps=1"]
    assert cli.main(argv) == 0
    import json

    config = json.loads((out / "config.json").read_text())
    assert config["train"]["steps"] == 2 and config["task"]["params"]["seq_len"] == 8


def test_resume_with_another_out_is_refused_not_ignored(finished_run, tmp_path, capsys):
    other = tmp_path / "other"
    assert cli.main(["train", "--resume", str(finished_run), "--out", str(other)]) == 2
    assert f"--resume continues {finished_run} in place; drop --out" in capsys.readouterr().err
    assert not other.exists()
