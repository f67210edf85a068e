import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import globalconv
from globalconv import config as C
from globalconv.train import train
from globalconv.train.records import read_metrics

SETTINGS = [
    "model.d_model=16",
    "model.n_layers=1",
    "model.dropout=0",  # dropout masks differ between one process and two
    "train.batch_size=32",
    "train.warmup_steps=2",
    "train.threads=1",
    "train.eval_batch_size=1000",
    "task.params.valid_fraction=0.1",
    "train.steps=6",
    "train.eval_every=3",
]


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch without distributed")
def test_torchrun_two_processes_match_one(tmp_path):
    """2 CPU processes (gloo), 2 micro-batches each, equal the single-process full batch."""
    src = str(Path(globalconv.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    args = ["-m", "globalconv", "train", "-q", "--out", str(tmp_path / "ddp"), *SETTINGS]
    proc = subprocess.run(
        [*launch, *args, "train.grad_accum=2"], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("run directory:") == 1  # one process speaks

    single = train(C.load(None, SETTINGS), tmp_path / "one", progress=False)
    ddp = read_metrics(tmp_path / "ddp" / "metrics.jsonl")
    one = read_metrics(tmp_path / "one" / "metrics.jsonl")
    assert [r["step"] for r in ddp] == [r["step"] for r in one]  # one writer, no duplicates
    for a, b in zip(ddp, one, strict=True):
        for key in ("loss", "valid_loss", "valid_accuracy", "lr"):
            if key in b:
                assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-6), (key, a, b)

    summary = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert summary["world_size"] == 2
    for key in ("test_loss", "test_accuracy", "valid_loss", "final_train_loss"):
        assert summary[key] == pytest.approx(getattr(single, key), rel=1e-5, abs=1e-6), key
    wa = load_file(str(tmp_path / "ddp" / "model.safetensors"))
    wb = load_file(str(tmp_path / "one" / "model.safetensors"))
    for k in wb:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-4, atol=1e-5)
