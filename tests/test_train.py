import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import globalconv
from globalconv import cli
from globalconv import config as C
from globalconv.train import CheckpointError, TrainingInterrupted, checkpoint, loop, train
from globalconv.train.data import BatchOrder
from globalconv.train.records import read_metrics

# Tiny and single-threaded: fast on a shared 2-core machine, and bit-reproducible.
TINY = [
    "model.d_model=16",
    "model.n_layers=1",
    "train.batch_size=32",
    "train.warmup_steps=2",
    "train.threads=1",
    "train.eval_batch_size=1000",
    "task.params.valid_fraction=0.1",
]


def cfg(*overrides):
    return C.load(None, [*TINY, *overrides])


def losses(run_dir):
    return [(r["step"], r["loss"]) for r in read_metrics(run_dir / "metrics.jsonl") if "loss" in r]


def evals(run_dir):
    return [r for r in read_metrics(run_dir / "metrics.jsonl") if "valid_loss" in r]


def weights(run_dir):
    return load_file(str(run_dir / "model.safetensors"))


def same_weights(a, b):
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    return all(torch.equal(wa[k], wb[k]) for k in wa)


RESULT_KEYS = ["final_train_loss", "test_loss", "test_accuracy", "valid_loss", "params"]


def test_same_config_and_seed_give_the_same_metrics(tmp_path):
    c = cfg("train.steps=8", "train.eval_every=4")
    a = train(c, tmp_path / "a", progress=False)
    b = train(c, tmp_path / "b", progress=False)
    assert [getattr(a, k) for k in RESULT_KEYS] == [getattr(b, k) for k in RESULT_KEYS]
    assert losses(tmp_path / "a") == losses(tmp_path / "b") and len(losses(tmp_path / "a")) == 8
    assert same_weights(tmp_path / "a", tmp_path / "b")
    other = train(cfg("train.steps=8", "train.seed=1"), tmp_path / "c", progress=False)
    assert other.final_train_loss != a.final_train_loss  # the seed matters


def test_run_directory_contents(tmp_path):
    s = train(cfg("train.steps=4", "train.eval_every=2"), tmp_path / "r", progress=False)
    names = {p.name for p in (tmp_path / "r").iterdir()}
    expected = {"config.json", "env.json", "metrics.jsonl", "summary.json", "model.safetensors"}
    assert expected | {"checkpoint.pt"} <= names
    env = json.loads((tmp_path / "r" / "env.json").read_text())
    assert env["torch"] == torch.__version__ and env["threads"] == 1
    assert {"numpy", "pydantic", "safetensors"} <= set(env["packages"])
    first = read_metrics(tmp_path / "r" / "metrics.jsonl")[0]
    assert {"step", "loss", "lr", "tokens_per_s", "grad_norm"} <= set(first)
    assert [r["step"] for r in evals(tmp_path / "r")] == [2, 4]
    assert s.steps_done == 4 and s.world_size == 1 and s.match is None
    assert {g["name"] for g in s.param_groups} == {"decay", "no_decay", "kernel"}
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert C.parse(config) == cfg("train.steps=4", "train.eval_every=2")  # resolved, reloadable


def crash_at(monkeypatch, step, how="crash"):
    """Make the loop die (or receive SIGINT) when it draws the batch of ``step``."""
    real = BatchOrder.indices

    def indices(self, s):
        if s == step:
            if how == "sigint":
                signal.raise_signal(signal.SIGINT)
            else:
                raise RuntimeError("simulated crash")
        return real(self, s)

    monkeypatch.setattr(BatchOrder, "indices", indices)


# dropout on: resuming must restore the RNG too
RESUMABLE = (
    "train.steps=12",
    "train.checkpoint_every=4",
    "train.eval_every=3",
    "model.dropout=0.1",
)


def test_resume_after_a_crash_equals_an_uninterrupted_run(tmp_path, monkeypatch):
    c = cfg(*RESUMABLE)
    whole = train(c, tmp_path / "whole", progress=False)
    crash_at(monkeypatch, 10)  # dies after step 10; the last checkpoint is at step 8
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(c, tmp_path / "part", progress=False)
    monkeypatch.undo()
    assert checkpoint.read_meta(tmp_path / "part" / "checkpoint.pt")["step"] == 8
    assert not (tmp_path / "part" / "summary.json").exists()
    with pytest.raises(ValueError, match="already holds a run; pass --resume"):
        train(c, tmp_path / "part", progress=False)  # never a silent fresh start
    resumed = train(c, tmp_path / "part", progress=False, resume=True)
    assert resumed.resumed_from_step == 8
    assert [getattr(resumed, k) for k in RESULT_KEYS] == [getattr(whole, k) for k in RESULT_KEYS]
    assert losses(tmp_path / "part") == losses(tmp_path / "whole")  # steps 9-10 not doubled
    assert evals(tmp_path / "part") == evals(tmp_path / "whole")
    assert same_weights(tmp_path / "part", tmp_path / "whole")
    again = train(c, tmp_path / "part", progress=False, resume=True)  # finished: nothing to do
    assert again == resumed


def test_checkpoint_holds_format_1s_keys_and_the_progress(tmp_path):
    c = cfg("train.steps=4", "train.eval_every=2", "train.early_stopping.patience=5")
    s = train(c, tmp_path / "r", progress=False)
    meta, state = checkpoint.load(tmp_path / "r" / "checkpoint.pt")
    # format 1's keys, in order: checkpoints of earlier versions resume, and they resume these
    assert list(state) == [
        "model", "optimizer", "step", "tokens", "seconds", "best", "best_state", "done",
        "last_loss", "rng",
    ]  # fmt: skip
    progress = loop.Progress(**{k: state[k] for k in list(state)[2:-1]})
    assert (progress.step, progress.tokens, progress.done) == (4, s.train_tokens, True)
    assert (progress.best["value"], progress.best["step"]) == (s.best_valid_loss, s.best_valid_step)
    assert progress.best_state.keys() == state["model"].keys()  # patience keeps the best weights
    assert progress.last_loss == s.final_train_loss and meta["step"] == 4
    assert list(state["rng"][0]) == ["cpu"]  # one entry per process


def test_sigint_saves_and_resume_matches(tmp_path, monkeypatch):
    c = cfg(*RESUMABLE)
    whole = train(c, tmp_path / "whole", progress=False)
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN in a background job, else the default
    crash_at(monkeypatch, 5, how="sigint")
    with pytest.raises(TrainingInterrupted, match="stopped by SIGINT at step 6"):
        train(c, tmp_path / "part", progress=False)
    monkeypatch.undo()
    assert signal.getsignal(signal.SIGINT) == before  # handler restored
    assert checkpoint.read_meta(tmp_path / "part" / "checkpoint.pt")["step"] == 6
    resumed = train(c, tmp_path / "part", progress=False, resume=True)
    assert [getattr(resumed, k) for k in RESULT_KEYS] == [getattr(whole, k) for k in RESULT_KEYS]
    assert losses(tmp_path / "part") == losses(tmp_path / "whole")


def test_resume_refuses_a_different_config_or_a_damaged_checkpoint(tmp_path, monkeypatch):
    c = cfg(*RESUMABLE)
    crash_at(monkeypatch, 6)
    with pytest.raises(RuntimeError):
        train(c, tmp_path / "r", progress=False)
    monkeypatch.undo()
    wider = cfg(*RESUMABLE, "model.d_model=32")
    with pytest.raises(CheckpointError, match=r"model.d_model=16 in the checkpoint, 32 now"):
        train(wider, tmp_path / "r", progress=False, resume=True)
    # keys that do not change the computation may differ
    assert C.load(None, [*TINY, *RESUMABLE, "train.eval_batch_size=50"])
    ckpt = tmp_path / "r" / "checkpoint.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="corrupted"):
        train(c, tmp_path / "r", progress=False, resume=True)
    with pytest.raises(CheckpointError, match="nothing to resume"):
        train(c, tmp_path / "empty", progress=False, resume=True)


def test_cli_resume_errors_exit_2(tmp_path, capsys):
    assert cli.main(["train", "-q", "--resume", str(tmp_path / "nope")]) == 2
    assert "not a run directory" in capsys.readouterr().err


def child_env():
    src = str(Path(globalconv.__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}


def test_cli_ctrl_c_saves_a_checkpoint_and_exits_130(tmp_path):
    out = tmp_path / "run"
    args = [sys.executable, "-m", "globalconv", "train", "-q", "--out", str(out), *TINY]
    args += ["train.steps=100000", "train.log_every=1", "train.checkpoint_every=0"]
    proc = subprocess.Popen(args, env=child_env(), stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while len(losses(out)) < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "checkpoint saved: resume with globalconv train --resume" in err
    step = checkpoint.read_meta(out / "checkpoint.pt")["step"]
    assert 3 <= step < 100000 and not (out / "summary.json").exists()


def test_early_stopping_keeps_the_best_weights(tmp_path):
    # min_delta=1 makes every evaluation after the first a non-improvement
    c = cfg(
        "train.steps=50",
        "train.eval_every=2",
        "train.early_stopping.patience=2",
        "train.early_stopping.metric=accuracy",
        "train.early_stopping.min_delta=1.0",
    )
    s = train(c, tmp_path / "r", progress=False)
    assert s.stopped_early and s.steps_done == 6
    assert s.best_valid_step == 2 and s.weights_from_step == 2
    logged = evals(tmp_path / "r")[0]  # the step-2 evaluation, from the weights then
    assert s.valid_accuracy == logged["valid_accuracy"]
    assert s.valid_loss == pytest.approx(logged["valid_loss"], rel=1e-6)


def test_gradient_accumulation_matches_the_full_batch(tmp_path):
    plain = train(cfg("train.steps=3", "model.dropout=0"), tmp_path / "a", progress=False)
    accum = train(
        cfg("train.steps=3", "model.dropout=0", "train.grad_accum=4"),
        tmp_path / "b",
        progress=False,
    )
    assert accum.final_train_loss == pytest.approx(plain.final_train_loss, rel=1e-5)
    wa, wb = weights(tmp_path / "a"), weights(tmp_path / "b")
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-4, atol=1e-5)


def test_bf16_autocast_and_compile_run(tmp_path):
    s = train(cfg("train.steps=3", "train.precision=bf16"), tmp_path / "bf16", progress=False)
    assert s.precision == "bf16" and s.final_train_loss < 10
    c = cfg("train.steps=2", "train.compile=true", "train.compile_backend=eager")
    s = train(c, tmp_path / "compiled", progress=False)
    assert s.final_train_loss < 10


def test_tensorboard_logging(tmp_path):
    pytest.importorskip("tensorboard")
    train(cfg("train.steps=3", "train.tensorboard=true"), tmp_path / "r", progress=False)
    assert list((tmp_path / "r" / "tensorboard").glob("events.out.tfevents.*"))


def test_bad_runtime_settings_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="needs a validation split"):
        train(cfg("train.eval_every=2", "task.params.valid_fraction=0"), tmp_path / "a")
    with pytest.raises(ValueError, match="exceeds the 3600 training examples"):
        train(cfg("train.batch_size=4000"), tmp_path / "b")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            train(cfg("train.device=cuda"), tmp_path / "c")
