"""Processes: one writer per run directory (class 7); nothing left behind (class 6)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from globalconv import cli
from globalconv.core import io
from globalconv.train import lock

from .conftest import TINY

SRC = str(Path(__file__).resolve().parents[2] / "src")


def globalconv(*argv, **kwargs):
    env = {**os.environ, "PYTHONPATH": SRC, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "globalconv", *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # a shell running the tests in the background ignores SIGINT, and children inherit that
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        **kwargs,
    )


def wait_for(condition, seconds=300.0):  # the machine may be loaded
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def long_run(out):
    steps = [o if not o.startswith("train.steps=") else "train.steps=1000000" for o in TINY]
    return globalconv("train", *steps, "-q", "--out", str(out))


def test_a_second_process_on_a_run_directory_is_refused_naming_the_holder(tmp_path, capsys):
    out = tmp_path / "run"
    first = long_run(out)
    try:
        assert wait_for(lambda: (out / "checkpoint.pt").is_file())  # in the training loop
        for argv in (  # this test's process is the second one
            ["train", "--resume", str(out), "-q"],
            ["train", *TINY, "-q", "--out", str(out), "--overwrite"],
            ["eval", str(out)],
        ):
            assert cli.main(argv) == 2
            assert f"{out} is in use by process {first.pid} on " in capsys.readouterr().err
    finally:
        first.send_signal(signal.SIGTERM)  # saves its checkpoint and exits
        first.communicate(timeout=60)
    assert first.returncode == 130
    assert not (out / lock.HOLDER).exists()
    assert cli.main(["train", "--resume", str(out), "train.steps=4", "-q"]) == 2  # differs
    with lock.locked(out):  # free again once the holder is gone
        pass


def test_a_killed_holder_leaves_no_lock_and_its_temporary_files_are_removed(tmp_path):
    out = tmp_path / "run"
    first = long_run(out)
    assert wait_for(lambda: (out / "checkpoint.pt").is_file())
    first.kill()  # SIGKILL: no handler runs, as in a crash
    first.communicate(timeout=60)
    stale = out / ".checkpoint.pt.abc123.tmp"  # as a kill in the middle of a save leaves
    stale.write_bytes(b"partial")
    with lock.locked(out):
        assert not stale.exists()
    assert io.remove_temporaries(out) == []


def _interrupt_at(tmp_path, delays):
    for delay in delays:  # importing, parsing, building the task and model, training
        process = globalconv("train", *TINY, "-q", "--out", str(tmp_path / f"run{delay}"))
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
        finished = (tmp_path / f"run{delay}" / "summary.json").is_file()
        if process.returncode == 0 or (process.returncode == -signal.SIGINT and finished):
            continue  # finished before the signal came (or it came during interpreter exit)
        # not -2 (death by SIGINT, what an interrupt inside some libraries' imports leaves
        # behind) nor a RecursionError from a half-loaded numpy
        assert process.returncode == 130, (delay, err)
        assert "Traceback" not in err, (delay, err)
        assert err.strip().endswith("interrupted") or "checkpoint" in err, (delay, err)


def test_ctrl_c_during_start_up_is_a_clean_message(tmp_path):
    _interrupt_at(tmp_path, (0.5, 1.5, 3.0))


@pytest.mark.slow
def test_ctrl_c_at_any_moment_of_start_up_is_a_clean_message(tmp_path):
    _interrupt_at(tmp_path, [round(0.3 + 0.05 * i, 2) for i in range(60)])


def _descendants(pid):
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _alive(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process table from /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stopping_a_sweep_parent_stops_its_workers(tmp_path, sig):
    steps = [o if not o.startswith("train.steps=") else "train.steps=1000000" for o in TINY]
    parent = globalconv(
        "sweep", "--grid", "train.seed=0,1", "--jobs", "2", "--out", str(tmp_path / "s"),
        "-q", *steps,
    )  # fmt: skip
    runs = [tmp_path / "s" / f"seed={s}" / "checkpoint.pt" for s in (0, 1)]
    try:
        assert wait_for(lambda: all(r.is_file() for r in runs)), parent.stderr
        workers = _descendants(parent.pid)
        assert len(workers) >= 2
        parent.send_signal(sig)
        parent.communicate(timeout=120)
        assert parent.returncode == 130
        assert wait_for(lambda: not any(_alive(w) for w in workers), seconds=20)
    finally:
        if parent.poll() is None:
            parent.kill()
    for run in runs:  # each worker saved its run on the way out: resumable
        assert run.is_file()


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process table from /proc")
def test_stopping_a_ray_sweep_saves_its_runs_and_leaves_no_process(tmp_path):
    pytest.importorskip("ray", reason="ray is not installed (pip install 'globalconv[ray]')")
    # no periodic checkpoint: the one found afterwards was saved on the way out
    steps = [o if not o.startswith("train.steps=") else "train.steps=1000000" for o in TINY]
    parent = globalconv(
        "sweep", "--grid", "train.seed=0,1", "--executor", "ray", "--out", str(tmp_path / "s"),
        "-q", *steps, "train.checkpoint_every=1000000", "train.log_every=1",
    )  # fmt: skip
    runs = [tmp_path / "s" / f"seed={s}" for s in (0, 1)]
    try:
        assert wait_for(lambda: all((r / "metrics.jsonl").is_file() for r in runs)), parent.stderr
        ray_processes = _descendants(parent.pid)  # its local Ray instance and workers
        assert len(ray_processes) >= 2
        parent.send_signal(signal.SIGTERM)
        parent.communicate(timeout=120)
        assert parent.returncode == 130
        assert wait_for(lambda: not any(_alive(p) for p in ray_processes), seconds=30)
    finally:
        if parent.poll() is None:
            parent.kill()
    for run in runs:  # each task saved its run when cancelled: resumable
        assert (run / "checkpoint.pt").is_file()
