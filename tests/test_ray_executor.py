"""The Ray executor: the same run tree, the same numbers and the same failures as the local one.

The tests that train need ray (``pip install 'globalconv[ray]'``) and start a small local Ray
instance; the others check the executor's choices with a stand-in for the ray module.
"""

import json
import sys
from types import SimpleNamespace

import pytest

from globalconv import cli
from globalconv.config import ConfigError
from globalconv.train import executors

try:
    import ray
except ImportError:
    ray = None

needs_ray = pytest.mark.skipif(
    ray is None, reason="ray is not installed (pip install 'globalconv[ray]')"
)

# a real comparison in seconds (as in test_protocol's end-to-end test)
TINY_COMPARE = ["compare", "--suite", "quick", "--tasks", "mqar_32x4", "-q", "--steps", "6",
                "model.d_model=16", "task.params.num_train=300", "task.params.num_test=60",
                "train.batch_size=16"]  # fmt: skip
# a run in about a second: parity on 8 bits, one layer of width 8, 3 steps
TINY_RUN = ["task.name=parity", "task.params.seq_len=8", "task.params.num_train=64",
            "task.params.num_test=32", "model.d_model=8", "model.n_layers=1", "train.steps=3",
            "train.batch_size=16", "train.warmup_steps=1", "train.threads=1"]  # fmt: skip


@pytest.fixture(scope="module")
def ray_instance():
    """A local Ray instance for this module, as frugal as Ray allows."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def read(path):
    return json.loads(path.read_text())


def test_missing_ray_is_one_line_naming_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as if not installed
    out = tmp_path / "cmp"
    assert cli.main([*TINY_COMPARE, "--no-tune", "--executor", "ray", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "globalconv compare: error: Ray is not installed: pip install 'globalconv[ray]'"
    assert not any(out.rglob("summary.json"))  # refused before anything trained


def test_executor_options_refuse_what_does_not_apply(tmp_path, capsys):
    common = [*TINY_COMPARE, "--no-tune", "--out", str(tmp_path / "cmp")]
    assert cli.main([*common, "--executor", "ray", "--jobs", "2"]) == 2
    assert "--jobs is for the local executor" in capsys.readouterr().err
    assert cli.main([*common, "--ray-address", "auto"]) == 2
    assert "--ray-address needs --executor ray" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="unknown executor 'dask'; available: local, ray"):
        executors.make("dask")


class FakeRay:
    """What RayCluster asks of the ray module, recorded."""

    def __init__(self, initialized=False):
        self.initialized, self.calls = initialized, []
        self.exceptions = SimpleNamespace(RayTaskError=RuntimeError)

    def is_initialized(self):
        return self.initialized

    def init(self, **kwargs):
        self.calls.append(("init", kwargs))
        self.initialized = True

    def shutdown(self):
        self.calls.append(("shutdown", {}))
        self.initialized = False

    def cluster_resources(self):
        return {"CPU": 6.0}

    def remote(self, **options):
        return lambda fn: fn


@pytest.mark.parametrize(
    "address, env, expected",
    [
        (None, None, {"include_dashboard": False, "log_to_driver": False}),
        (None, "ray://head:10001", {"address": "ray://head:10001", "log_to_driver": False}),
        ("10.0.0.1:6379", "ray://head:10001", {"address": "10.0.0.1:6379", "log_to_driver": False}),
    ],
)
def test_ray_connects_to_the_address_given_else_starts_a_local_instance(
    address, env, expected, monkeypatch
):
    fake = FakeRay()
    monkeypatch.setitem(sys.modules, "ray", fake)
    if env:
        monkeypatch.setenv("RAY_ADDRESS", env)
    else:
        monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with executors.make("ray", ray_address=address) as runner:
        assert runner.slots == 6  # as many runs in flight as the cluster has CPUs
    assert fake.calls == [("init", expected), ("shutdown", {})]  # it closes what it opened


def test_ray_leaves_a_session_the_caller_opened(monkeypatch):
    fake = FakeRay(initialized=True)
    monkeypatch.setitem(sys.modules, "ray", fake)
    with executors.make("ray"):
        pass
    assert fake.calls == [] and fake.initialized


def test_ray_refuses_a_cuda_run_on_a_cluster_without_gpus(monkeypatch):
    from globalconv import config as C

    monkeypatch.setitem(sys.modules, "ray", FakeRay(initialized=True))
    cfg = C.load(None, [*TINY_RUN, "train.device=cuda"])
    with executors.make("ray") as runner, pytest.raises(ConfigError, match="has no GPU"):
        runner.submit(cfg, "unused", "new")


@needs_ray
def test_a_ray_comparison_resumes_the_run_tree_it_finds(ray_instance, tmp_path, capsys):
    """One finished run is read back, not retrained; a partial one resumes to the same numbers;
    the rest train as Ray tasks, into the same run tree."""
    out = tmp_path / "cmp"
    local = [*TINY_COMPARE, "--no-tune", "--mixers", "attention", "--seeds", "0,1", "--jobs", "1"]
    assert cli.main([*local, "--out", str(out)]) == 0
    finished, partial = out / "mqar_32x4/attention-l2/s0", out / "mqar_32x4/attention-l2/s1"
    stamp = (finished / "summary.json").stat().st_mtime_ns
    whole = read(partial / "summary.json")
    (partial / "summary.json").unlink()  # its checkpoint stays: a partial run
    capsys.readouterr()

    args = [*TINY_COMPARE, "--no-tune", "--mixers", "attention,global_conv", "--seeds", "0,1"]
    assert cli.main([*args, "--executor", "ray", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "[skip] mqar_32x4/attention-l2/s0: finished" in said
    assert "[resume] mqar_32x4/attention-l2/s1" in said
    assert (
        "[run] mqar_32x4/global_conv-l2/s0" in said and "[done] mqar_32x4/global_conv-l2/s1" in said
    )
    assert (finished / "summary.json").stat().st_mtime_ns == stamp
    resumed = read(partial / "summary.json")
    assert resumed["resumed_from_step"] == whole["steps"]
    assert {k: v for k, v in resumed.items() if k.startswith("test_")} == {
        k: v for k, v in whole.items() if k.startswith("test_")
    }
    assert ray.is_initialized()  # the caller's instance is left open


@needs_ray
def test_ray_gives_the_local_selection_and_test_numbers(ray_instance, tmp_path):
    """The same tuned comparison through the local executor and through Ray: the same choices
    and the same test metrics, bit for bit (seeded runs, one thread each)."""
    args = [*TINY_COMPARE, "--mixers", "attention,global_conv", "--seeds", "0,1",
            "--grid", "train.lr=1e-3,3e-3"]  # fmt: skip
    assert cli.main([*args, "--jobs", "1", "--out", str(tmp_path / "local")]) == 0
    assert cli.main([*args, "--executor", "ray", "--out", str(tmp_path / "ray")]) == 0
    local, on_ray = read(tmp_path / "local/protocol.json"), read(tmp_path / "ray/protocol.json")
    assert [c["chosen"] for c in on_ray["cells"]] == [c["chosen"] for c in local["cells"]]
    assert [c["points"] for c in on_ray["cells"]] == [c["points"] for c in local["cells"]]

    def tests(summary):
        return {
            r["name"]: {k: v for k, v in r["summary"].items() if k.startswith("test_")}
            for r in summary["runs"]
        }

    assert len(tests(local)) == 4 and tests(on_ray) == tests(local)


@needs_ray
def test_a_ray_sweep_reports_a_failed_run_as_the_local_one_does(ray_instance, tmp_path, capsys):
    grid = ["--grid", "train.lr=1e-3,1e30", "-q", *TINY_RUN]  # 1e30 diverges
    assert cli.main(["sweep", *grid, "--out", str(tmp_path / "local")]) == 1
    assert cli.main(["sweep", *grid, "--executor", "ray", "--out", str(tmp_path / "ray")]) == 1
    said = capsys.readouterr().out
    assert "[failed] lr=1e+30" in said
    local = read(tmp_path / "local/sweep_summary.json")["runs"]
    on_ray = read(tmp_path / "ray/sweep_summary.json")["runs"]
    assert on_ray[1]["error"] == local[1]["error"]
    assert on_ray[1]["error"].startswith("DivergedError: training loss is nan")
    assert on_ray[0]["summary"]["test_accuracy"] == local[0]["summary"]["test_accuracy"]
