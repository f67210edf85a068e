import shutil

import pytest

from globalconv import config as C
from globalconv.train import train

# a run in about a second: parity on 8 bits, one layer of width 8, 3 steps
TINY = [
    "task.name=parity",
    "task.params.seq_len=8",
    "task.params.num_train=64",
    "task.params.num_test=32",
    "model.d_model=8",
    "model.n_layers=1",
    "train.steps=3",
    "train.batch_size=16",
    "train.warmup_steps=1",
    "train.threads=1",
    "train.checkpoint_every=2",
]


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("finished") / "run"
    train(C.load(None, TINY), out, progress=False)
    return out


@pytest.fixture
def run_copy(finished_run, tmp_path):
    """A fresh copy of a finished run, to damage."""
    copy = tmp_path / "run"
    shutil.copytree(finished_run, copy)
    return copy
