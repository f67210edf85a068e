"""The run directory's owner (``train.rundir.RunDir``) and the typed summary it reads
(``train.summary.Summary``): paths, states, the model round trip, and summaries of every
version, damaged or not."""

import json
import shutil
from pathlib import Path

import pytest
import torch

from globalconv import config as C
from globalconv import tasks
from globalconv.core import io
from globalconv.models import build_model
from globalconv.train import checkpoint, train
from globalconv.train.rundir import RunDir, RunState, find_runs
from globalconv.train.scoring import evaluate
from globalconv.train.summary import SCHEMA_VERSION, Summary

ROOT = Path(__file__).resolve().parents[1]

# a run in about a second: parity on 8 bits, one layer of width 8
TINY = [
    "task.name=parity",
    "task.params.seq_len=8",
    "task.params.num_train=64",
    "task.params.num_test=32",
    "model.d_model=8",
    "model.n_layers=1",
    "train.steps=4",
    "train.batch_size=16",
    "train.warmup_steps=1",
    "train.threads=1",
    "train.checkpoint_every=2",
]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("rundir") / "run"
    train(C.load(None, TINY), out, progress=False)
    return out


@pytest.fixture
def copy(finished, tmp_path):
    return RunDir(shutil.copytree(finished, tmp_path / "run"))


# ---------------------------------------------------------------------------------------------
# paths and listing


def test_every_file_has_one_name_and_a_path():
    run = RunDir("runs/a")
    assert run.path == Path("runs/a") and RunDir(Path("runs/a")) == run
    names = {
        run.config_path: "config.json",
        run.request_path: "request.json",
        run.env_path: "env.json",
        run.summary_path: "summary.json",
        run.weights_path: "model.safetensors",
        run.metrics_path: "metrics.jsonl",
        run.checkpoint_path: "checkpoint.pt",
        run.tensorboard_path: "tensorboard",
    }
    for path, name in names.items():
        assert path == Path("runs/a") / name


def test_the_trainer_writes_what_run_dir_names(finished):
    run = RunDir(finished)
    for path in (run.config_path, run.request_path, run.env_path, run.summary_path,
                 run.weights_path, run.metrics_path, run.checkpoint_path):  # fmt: skip
        assert path.is_file(), path
    assert run.run_config() == C.load(None, TINY)
    assert run.read_env()["threads"] == 1
    assert [r["step"] for r in run.read_metrics() if "loss" in r] == [1, 2, 3, 4]


def test_find_runs_lists_every_run_or_the_finished_ones(copy, tmp_path):
    partial = RunDir(shutil.copytree(copy.path, tmp_path / "partial"))
    partial.summary_path.unlink()
    assert find_runs(tmp_path) == [partial, copy]
    assert find_runs(tmp_path, finished=True) == [copy]


# ---------------------------------------------------------------------------------------------
# status


def test_status_of_a_finished_run(copy):
    status = copy.status()
    assert status.state is RunState.DONE and status.label == "done" and status.problem is None
    assert status.summary == copy.read_summary() and status.config == copy.read_config()


def test_status_of_a_run_stopped_early(copy):
    summary = copy.read_summary().model_copy(update={"stopped_early": True})
    copy.write_summary(summary)
    assert copy.status().state is RunState.EARLY_STOP
    assert copy.status().label == "early stop"


def test_status_of_a_partial_run_and_of_one_not_started(copy):
    copy.summary_path.unlink()
    status = copy.status()
    assert status.state is RunState.PARTIAL and (status.step, status.steps) == (4, 4)
    assert status.label == "step 4/4" and status.summary is None
    meta, state = checkpoint.load(copy.checkpoint_path)
    checkpoint.save(copy.checkpoint_path, state, {**meta, "step": 2})
    assert copy.status().label == "step 2/4"
    copy.checkpoint_path.write_bytes(b"junk")
    status = copy.status()
    assert status.state is RunState.PARTIAL and status.label == "bad checkpoint"
    assert "not a globalconv checkpoint" in status.problem
    copy.checkpoint_path.unlink()
    assert copy.status().state is RunState.NEW and copy.status().label == "no checkpoint"


@pytest.mark.parametrize("name", ["config.json", "env.json", "summary.json", "model.safetensors"])
def test_a_damaged_file_makes_the_run_damaged_and_is_named(copy, name):
    path = copy.path / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x20
    path.write_bytes(bytes(data))
    status = copy.status()
    assert status.state is RunState.DAMAGED and status.label == "damaged"
    assert str(path) in status.problem and status.summary is None


def test_a_summary_of_the_wrong_shape_makes_the_run_damaged(copy):
    data = copy.read_summary().to_json()
    io.write_json(copy.summary_path, {**data, "params": "many"}, checksum=True)
    status = copy.status()
    assert status.state is RunState.DAMAGED
    assert str(copy.summary_path) in status.problem and "params" in status.problem


def test_a_finished_run_without_weights_is_damaged(copy):
    copy.weights_path.unlink()
    status = copy.status()
    assert status.state is RunState.DAMAGED and "model.safetensors is missing" in status.problem


# ---------------------------------------------------------------------------------------------
# the model


def test_load_model_gives_the_saved_model_back(tmp_path):
    cfg = C.load(None, [*TINY, "model.n_layers=2"])
    task = tasks.build(cfg.task.name, cfg.task.params)
    torch.manual_seed(0)
    model = build_model(cfg.model, task.spec).eval()
    run = RunDir(tmp_path / "r")
    run.write_config(cfg.model_dump(mode="json"))
    run.write_weights(model.state_dict(), step=0)
    loaded = run.load_model()
    assert not loaded.training
    inputs, _ = task.splits()["test"].batch(torch.arange(5))
    with torch.no_grad():
        assert torch.equal(loaded(**inputs), model(**inputs))


def test_load_model_of_a_trained_run_scores_what_its_summary_says(finished):
    run = RunDir(finished)
    cfg, summary = run.run_config(), run.read_summary()
    task = tasks.build(cfg.task.name, cfg.task.params)
    metrics = evaluate(run.load_model(), task.splits()["test"], task.spec, 64, "cpu")
    assert metrics["accuracy"] == summary.test_accuracy
    assert metrics["loss"] == pytest.approx(summary.test_loss, rel=1e-6)


def test_load_model_errors_name_the_file(copy, tmp_path):
    cfg = copy.read_config()
    cfg["model"]["d_model"] = 16  # the weights are of width 8
    io.write_json(copy.config_path, cfg, checksum=True)
    with pytest.raises(io.RunFileError, match="model.safetensors does not match the model"):
        copy.load_model()
    with pytest.raises(io.MissingRunFileError, match="config.json does not exist"):
        RunDir(tmp_path / "nothing").load_model()


# ---------------------------------------------------------------------------------------------
# the summary


def test_the_trainer_writes_a_versioned_summary_that_reads_back_equal(finished):
    run = RunDir(finished)
    written = json.loads(run.summary_path.read_text())
    assert next(iter(written)) == "schema_version" and written["schema_version"] == SCHEMA_VERSION
    summary = run.read_summary()
    assert summary.to_json() == written  # the file's content, key for key
    assert Summary.parse(summary.to_json(), "x") == summary
    assert summary.result("test") == written["test_accuracy"] == summary.test_accuracy
    assert summary.results("valid") == {}  # parity has no validation split here
    assert set(summary.results("test")) == {"test_loss", "test_accuracy"}


def test_a_summary_without_schema_version_is_version_1_and_reads_unchanged():
    committed = sorted((ROOT / "results").rglob("summary.json"))
    if not committed:
        pytest.skip("no committed study")
    for path in committed:
        data = json.loads(path.read_text())
        summary = RunDir(path.parent).read_summary()
        assert summary.schema_version == data.get("schema_version", 1) == 1
        assert summary.to_json() == data  # nothing added, nothing lost (the content)
    plain = Summary.parse({"task": "t", "mixer": "m"}, "x")
    assert plain.schema_version == 1 and plain.metric == "accuracy" and plain.params is None


def test_unknown_keys_are_kept_and_written_back(tmp_path):
    data = {"schema_version": 2, "task": "t", "mixer": "m", "ood_accuracy": 0.5, "new": [1]}
    summary = Summary.parse(data, "x")
    assert summary.schema_version == 2  # a newer file: read by the fields known here
    assert summary.result("ood") == 0.5 and summary.result("nothing") is None
    assert summary.to_json() == data
    run = RunDir(tmp_path)
    run.write_summary(summary)
    assert run.read_summary().to_json() == data


@pytest.mark.parametrize(
    "data, named",
    [
        ({"task": "t", "mixer": "m", "params": "many"}, "params: input should be a valid integer"),
        ({"task": "t", "mixer": "m", "baseline": {"value": "x", "what": "w"}}, "baseline.value"),
        ({"mixer": "m"}, "task: field required"),
        ([1, 2], "holds list, not a run summary"),
    ],
)
def test_a_summary_of_the_wrong_type_is_a_one_line_error_naming_the_file(tmp_path, data, named):
    run = RunDir(tmp_path)
    io.write_json(run.summary_path, data, checksum=True)
    with pytest.raises(io.RunFileError) as caught:
        run.read_summary()
    message = str(caught.value)
    assert message.startswith(str(run.summary_path)) and named in message
    assert "\n" not in message
