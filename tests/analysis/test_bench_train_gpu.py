import json
import shlex

import pytest
import torch

from globalconv import cli
from globalconv.analysis import bench_gpu
from globalconv.cli import bench


def test_bench_train_times_harness_beside_bare_and_skips_what_cannot_run(tmp_path, capsys):
    out = tmp_path / "bench-train.json"
    args = ["bench", "train", "--tasks", "mqar", "--mixers", "lightconv,fnet", "-q"]
    args += ["--repeats", "1", "--warmup", "0", "--variants", "harness,no-dropout"]
    assert cli.main([*args, "--json", str(out)]) == 0
    assert "x bare" in capsys.readouterr().out
    data = json.loads(out.read_text())
    assert "records" not in data  # the report's speed curves read "records" from bench mixers
    timed = {(r["mixer"], r["variant"]): r for r in data["train"] if "variant" in r}
    assert set(timed) == {("lightconv", v) for v in ("bare", "harness", "no-dropout")}
    bare = timed["lightconv", "bare"]
    assert bare["vs_bare"] == 1.0 and bare["tokens"] == 64 * 64
    assert all(r["tokens_per_s"] > 0 and r["min_ms"] <= r["median_ms"] for r in timed.values())
    assert {"task": "mqar", "mixer": "fnet", "skipped": "cannot be causal"} in data["train"]


def test_bench_train_bad_input(capsys):
    assert cli.main(["bench", "train", "--mixers", "nope"]) == 2
    assert "unknown mixer(s) nope" in capsys.readouterr().err
    assert cli.main(["bench", "train", "--variants", "turbo"]) == 2
    assert cli.main(["bench", "train", "--tasks", "listops"]) == 2


def test_bench_gpu_dry_run_lists_commands_that_parse(capsys, tmp_path):
    argv = ["bench", "gpu", "--dry-run", "--out", str(tmp_path), "--sizes", "1024,65536"]
    assert cli.main([*argv, "--suite-steps", "50", "--parts", "suite,op"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["op", "suite"]  # in the fixed order
    parser = cli.build_parser()
    for line in lines:
        command = shlex.split(line.split(": ", 1)[1])
        assert command[0] == "globalconv"
        parsed = parser.parse_args(command[1:])  # every planned command is valid
        assert parsed.func is not None
    assert "--attention-max-len 65536" in lines[0] and "train.device=cuda" in lines[1]
    assert "--steps 50" in lines[1] and str(tmp_path / "bench-op.json") in lines[0]


def test_bench_gpu_default_plan_covers_every_part():
    parser = cli.build_parser()
    args = parser.parse_args(["bench", "gpu"])
    args.parts = list(bench.GPU_PARTS)
    parts = [part for part, _ in bench.gpu_plan(args)]
    assert parts == ["op", "mixers", "flash", "suite", "report"]
    assert args.sizes[0] == 1024 and args.sizes[-1] == 65536


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="checks the message on a machine without CUDA"
)
def test_bench_gpu_without_cuda_is_a_clear_error(capsys):
    assert cli.main(["bench", "gpu", "--out", "unused"]) == 2
    assert "needs a CUDA device" in capsys.readouterr().err
    assert cli.main(["bench", "gpu", "--parts", "op,sideways", "--dry-run"]) == 2
    assert "--parts takes" in capsys.readouterr().err


def test_flash_part_says_when_flashfftconv_is_missing(monkeypatch):
    monkeypatch.setattr(bench_gpu.importlib.util, "find_spec", lambda name: None)
    result = bench_gpu.measure_flash([1024], dim=256, device="cuda", progress=False)
    assert "not installed" in result["skipped"]
