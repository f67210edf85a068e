import io as _io
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import globalconv
from globalconv.core import io
from globalconv.train import checkpoint
from globalconv.train.checkpoint import CheckpointError


def test_round_trip_and_meta_without_payload(tmp_path):
    path = tmp_path / "checkpoint.pt"
    state = {"w": torch.arange(6.0).view(2, 3), "step": 7, "nested": {"xs": [1, 2.5, None]}}
    checkpoint.save(path, state, {"step": 7, "config": {"a": 1}})
    meta, loaded = checkpoint.load(path)
    assert meta["step"] == 7 and meta["config"] == {"a": 1}
    torch.testing.assert_close(loaded["w"], state["w"])
    assert loaded["nested"] == {"xs": [1, 2.5, None]}
    assert checkpoint.read_meta(path)["step"] == 7


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "empty"])
def test_damaged_checkpoint_is_a_clear_error(tmp_path, damage):
    path = tmp_path / "checkpoint.pt"
    checkpoint.save(path, {"w": torch.randn(100)}, {"step": 1})
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":
        data[-10] ^= 0xFF
    elif damage == "garbage":
        data = bytearray(b"PK\x03\x04 not a checkpoint")
    else:
        data = bytearray()
    path.write_bytes(bytes(data))
    expected = "corrupted" if damage in ("truncate", "flip") else "not a globalconv checkpoint"
    with pytest.raises(CheckpointError, match=expected):
        checkpoint.load(path)


class Smuggled:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_loading_never_unpickles_arbitrary_objects(tmp_path, monkeypatch):
    # a well-formed file (valid checksum) whose payload holds a Python object
    path = tmp_path / "checkpoint.pt"
    real_save = torch.save
    monkeypatch.setattr(torch, "save", lambda obj, f: real_save({"evil": Smuggled()}, f))
    checkpoint.save(path, {}, {"step": 0})
    monkeypatch.undo()
    with pytest.raises(CheckpointError, match="cannot be loaded safely"):
        checkpoint.load(path)


def test_crash_between_write_and_rename_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    checkpoint.save(path, {"step": 1, "w": torch.ones(3)}, {"step": 1})

    def crash(*args):
        raise SystemExit("killed")  # the process dies after writing the temp file

    monkeypatch.setattr(io.os, "replace", crash)
    with pytest.raises(SystemExit):
        checkpoint.save(path, {"step": 2, "w": torch.zeros(3)}, {"step": 2})
    monkeypatch.undo()
    meta, state = checkpoint.load(path)
    assert meta["step"] == 1 and state["step"] == 1
    torch.testing.assert_close(state["w"], torch.ones(3))


SAVER = """
import os, signal, sys
import torch
from globalconv.core import io
from globalconv.train import checkpoint

path, point = sys.argv[1], sys.argv[2]
checkpoint.save(path, {"w": torch.full((1000,), 1.0), "step": 1}, {"step": 1})
real_fdopen = os.fdopen


class DiesHalfWay:  # the temp file's handle: writes half the bytes, then the process dies
    def __init__(self, f):
        self.f = f
    def __enter__(self):
        return self
    def __exit__(self, *exc):
        self.f.close()
    def write(self, data):
        self.f.write(data[: len(data) // 2])
        self.f.flush()
        os.kill(os.getpid(), signal.SIGKILL)


if point == "mid-write":
    io.os.fdopen = lambda fd, mode: DiesHalfWay(real_fdopen(fd, mode))
else:  # everything written and synced, killed before the rename
    io.os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL)
checkpoint.save(path, {"w": torch.full((1000,), 2.0), "step": 2}, {"step": 2})
"""


def child_env():
    src = str(Path(globalconv.__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}


@pytest.mark.parametrize("point", ["mid-write", "before-rename"])
def test_sigkill_during_save_leaves_the_previous_checkpoint(tmp_path, point):
    path = tmp_path / "checkpoint.pt"
    proc = subprocess.run(
        [sys.executable, "-c", SAVER, str(path), point], env=child_env(), timeout=120
    )
    assert proc.returncode == -signal.SIGKILL
    assert list(tmp_path.glob(".checkpoint.pt.*.tmp")), "the kill should leave a temp file"
    meta, state = checkpoint.load(path)
    assert meta["step"] == 1 and state["step"] == 1
    torch.testing.assert_close(state["w"], torch.full((1000,), 1.0))
    checkpoint.save(path, {"step": 3}, {"step": 3})  # leftovers do not get in the way
    assert checkpoint.read_meta(path)["step"] == 3


def test_weights_only_payload_is_what_torch_save_writes(tmp_path):
    # the payload is plain torch.save bytes: readable with the documented safe loader
    path = tmp_path / "checkpoint.pt"
    checkpoint.save(path, {"w": torch.ones(2)}, {"step": 0})
    data = path.read_bytes()
    n = int.from_bytes(data[48:56], "little")
    payload = data[56 + n :]
    loaded = torch.load(_io.BytesIO(payload), weights_only=True)
    torch.testing.assert_close(loaded["w"], torch.ones(2))
