import json

import pytest

from globalconv import cli
from globalconv import config as C


def test_overrides_are_typed_and_nested():
    overrides = ["model.d_model=128", "train.lr=3e-4", "model.mixer=attention"]
    cfg = C.load(None, [*overrides, "model.mixer_options.heads=8"])
    assert cfg.model.d_model == 128 and cfg.train.lr == 3e-4
    assert cfg.model.mixer_options == {"heads": 8}


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.d_modl=3", "unknown key 'model.d_modl'; allowed here: mixer"),
        ("model.mixer=nope", "unknown mixer 'nope'; available"),
        ("train.lr=-1", "train.lr: Input should be greater than 0"),
        ("model.norm=middle", "model.norm"),
        ("model.d_model=abc", "model.d_model"),
        ("nokey", "must look like key.path=value"),
    ],
)
def test_bad_configs_name_the_key(override, message):
    with pytest.raises(C.ConfigError, match=message):
        C.load(None, [override])


def test_yaml_and_json_files(tmp_path):
    (tmp_path / "a.yaml").write_text("model:\n  d_model: 32\ntrain:\n  steps: 5\n")
    (tmp_path / "b.json").write_text(json.dumps({"model": {"n_layers": 3}}))
    assert C.load(tmp_path / "a.yaml").model.d_model == 32
    assert C.load(tmp_path / "b.json", ["train.steps=7"]).train.steps == 7
    (tmp_path / "bad.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(C.ConfigError, match="must hold a mapping"):
        C.load(tmp_path / "bad.yaml")
    with pytest.raises(C.ConfigError, match="does not exist"):
        C.load(tmp_path / "missing.yaml")


def test_cli_bad_input_exits_2_with_one_line(capsys):
    assert cli.main(["train", "-q", "model.d_modl=3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown key 'model.d_modl'" in err
    assert cli.main(["compare", "-q", "--mixers", "attention,nope"]) == 2
    assert "unknown mixer(s) nope" in capsys.readouterr().err


def test_cli_train_writes_a_run_directory(tmp_path, capsys):
    out = tmp_path / "run"
    args = [
        "train",
        "-q",
        "--out",
        str(out),
        "train.steps=3",
        "model.d_model=16",
        "model.n_layers=1",
    ]
    assert cli.main(args) == 0
    assert "global_conv" in capsys.readouterr().out
    for name in ["config.json", "metrics.jsonl", "summary.json", "model.safetensors", "env.json"]:
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mixer"] == "global_conv" and summary["task"] == "mnist1d"
    assert 0.0 <= summary["test_accuracy"] <= 1.0 and summary["params"] > 0
    assert summary["flops_per_token"] > 0 and summary["train_seconds"] > 0
    resolved = json.loads((out / "config.json").read_text())
    assert resolved["train"]["steps"] == 3 and resolved["model"]["d_model"] == 16
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert lines[-1]["step"] == 3 and all("loss" in r for r in lines)


def test_cli_compare_runs_the_quick_suite_and_skips_finished_runs(tmp_path, capsys):
    args = ["compare", "-q", "--steps", "2", "--out", str(tmp_path), "model.d_model=16"]
    args += ["model.n_layers=1", "task.params.seq_len=16", "task.params.num_train=400"]
    args += ["--tasks", "mqar_32x4"]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    for mixer in ["attention", "global_conv", "gated_global_conv"]:
        # the recall study's choice, not tuned again: one run at the tuning seed
        cell = tmp_path / "mqar_32x4" / f"{mixer}-l1"
        assert (cell / "s0" / "summary.json").is_file()
        record = json.loads((cell / "selection.json").read_text())
        assert record["fixed"] == {"train.lr": 3e-3} and "recall" in record["fixed_from"]
        assert f"mqar_32x4 {mixer} " in " ".join(out.split())  # a row of the printed table
    assert "reference study" in out.replace("\n", " ")
    assert "FLOPs/token" in out and f"globalconv report {tmp_path}" in out
    run = tmp_path / "mqar_32x4" / "global_conv-l1" / "s0" / "summary.json"
    first = run.stat().st_mtime_ns
    assert cli.main(args) == 0  # rerun: finished runs are skipped, not retrained
    assert run.stat().st_mtime_ns == first
