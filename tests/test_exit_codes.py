"""The command line's exit codes: 2 with one line for the project's own input errors, 3 with one
line for a run that diverged, and any other exception propagates with its traceback."""

import pytest

from globalconv import cli
from globalconv.core.errors import (
    ConfigError,
    DataError,
    DivergedError,
    InputError,
    SequenceTooLongError,
)
from globalconv.core.io import MissingRunFileError, RunFileError
from globalconv.train.checkpoint import CheckpointError
from globalconv.train.lock import LockedError

INPUT_ERRORS = [
    ConfigError,
    DataError,
    SequenceTooLongError,
    RunFileError,
    MissingRunFileError,
    CheckpointError,
    LockedError,
]


@pytest.fixture
def planted(monkeypatch, tmp_path):
    """Run ``globalconv train`` with the training replaced by one that raises ``error``."""

    def run(error: BaseException) -> int:
        def train(*args, **kwargs):
            raise error

        monkeypatch.setattr("globalconv.train.train", train)
        return cli.main(["train", "-q", "--out", str(tmp_path / "run")])

    return run


def test_the_input_error_types_and_divergence_are_told_apart():
    assert all(issubclass(kind, InputError) for kind in INPUT_ERRORS)
    assert not issubclass(DivergedError, InputError)
    assert issubclass(MissingRunFileError, FileNotFoundError)  # still what a path API raises


@pytest.mark.parametrize("kind", INPUT_ERRORS, ids=lambda kind: kind.__name__)
def test_input_errors_exit_2_with_one_line(planted, kind, capsys):
    assert planted(kind("the problem; the fix")) == 2
    assert capsys.readouterr().err == "globalconv train: error: the problem; the fix\n"


def test_a_diverged_run_exits_3_with_one_line(planted, capsys):
    assert planted(DivergedError("training loss is nan at step 2; lower train.lr")) == 3
    assert capsys.readouterr().err == (
        "globalconv train: diverged: training loss is nan at step 2; lower train.lr\n"
    )


def test_a_real_divergence_exits_3(tmp_path, capsys):
    args = ["train", "-q", "--out", str(tmp_path / "run"), "model.d_model=8", "model.n_layers=1"]
    args += ["train.steps=20", "train.lr=1e8", "train.grad_clip=null", "train.warmup_steps=0"]
    args += ["train.schedule=constant", "train.log_every=1", "train.checkpoint_every=0"]
    assert cli.main(args) == cli.DIVERGED == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "diverged: training loss is nan" in err


@pytest.mark.parametrize(
    "error",
    [ValueError("a bug"), RuntimeError("a bug"), FileNotFoundError("a bug"), KeyError("a bug")],
    ids=lambda error: type(error).__name__,
)
def test_any_other_exception_propagates_with_its_traceback(planted, error):
    with pytest.raises(type(error), match="a bug"):
        planted(error)
