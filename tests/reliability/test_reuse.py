"""A finished run is reused only under the config it was made with (issue class 4)."""

import json

import pytest

from globalconv import cli
from globalconv import config as C
from globalconv.train import protocol, sweep

from .conftest import TINY


def _runs(*extra):
    cfg = C.load(None, [*TINY, "task.params.num_valid=16", *extra])
    return sweep.plan(sweep.SweepConfig(base=cfg.model_dump(mode="json"), grid={}))


def test_a_sweep_refuses_runs_made_with_another_config_and_reruns_them_on_request(tmp_path):
    sweep.run_sweep(_runs(), tmp_path, progress=False, echo=lambda *_: None)
    said = []
    again = sweep.run_sweep(_runs(), tmp_path, progress=False, echo=said.append)
    assert again["runs"][0]["status"] == "skipped" and said[0].startswith("[skip]")
    # threads and the like do not change the computation: still reused
    sweep.run_sweep(_runs("train.threads=2"), tmp_path, progress=False, echo=lambda *_: None)
    with pytest.raises(C.ConfigError, match=r"train.steps=3 in request.json, 4 now.*--rerun"):
        sweep.run_sweep(_runs("train.steps=4"), tmp_path, progress=False)
    redone = sweep.run_sweep(_runs("train.steps=4"), tmp_path, progress=False, rerun=True)
    assert redone["runs"][0]["summary"].steps == 4


def test_matched_runs_compare_the_request_not_the_resized_config(tmp_path):
    request = ["match.by=params", "match.tolerance=0.5", "model.mixer=attention"]
    runs = _runs(*request, "match.reference=global_conv")
    sweep.run_sweep(runs, tmp_path, progress=False, echo=lambda *_: None)
    assert sweep.reuse(tmp_path / runs[0][0], runs[0][2]) == "done"


def test_a_partial_run_made_with_another_config_is_refused_too(tmp_path):
    runs = _runs()
    run_dir = tmp_path / runs[0][0]
    run_dir.mkdir(parents=True)
    (run_dir / "checkpoint.pt").write_bytes(b"x")  # a partial run, as status sees it
    (run_dir / "request.json").write_text(json.dumps(C.load(None, TINY).model_dump(mode="json")))
    with pytest.raises(C.ConfigError, match="holds a partial run made with another config"):
        sweep.reuse(run_dir, runs[0][2])


def test_compare_refuses_a_directory_of_runs_made_with_fewer_steps(tmp_path, capsys):
    base = C.load(None, [*TINY, "task.params.num_valid=16"]).model_dump(mode="json")
    cell = protocol.Cell(name="parity/global_conv-l1", base=base)
    protocol.run([cell], tmp_path, progress=False, echo=lambda *_: None)
    longer = json.loads(json.dumps(base))
    longer["train"]["steps"] = 4
    cell4 = protocol.Cell(name="parity/global_conv-l1", base=longer)
    with pytest.raises(C.ConfigError, match=r"train.steps=3 in request.json, 4 now"):
        protocol.run([cell4], tmp_path, progress=False, echo=lambda *_: None)
    summary = protocol.run([cell4], tmp_path, progress=False, echo=lambda *_: None, rerun=True)
    assert summary["runs"][0]["summary"].steps == 4


def test_the_rerun_flag_is_on_compare_and_sweep():
    assert cli.parse_args(["compare", "--rerun"]).rerun
    assert cli.parse_args(["sweep", "--rerun"]).rerun
