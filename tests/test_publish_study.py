"""scripts/publish_study.py: a study's finished runs into results/, and a published study is a run
tree that compare continues without training anything again."""

import importlib.util
import shutil
from pathlib import Path

from globalconv import cli

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("publish_study", ROOT / "scripts/publish_study.py")
publish_study = importlib.util.module_from_spec(spec)
spec.loader.exec_module(publish_study)

ARGS = ["compare", "--suite", "quick", "--tasks", "mqar_32x4", "--mixers", "attention,global_conv",
        "--seeds", "0", "--grid", "train.lr=1e-3,3e-3", "--steps", "4", "-q", "model.d_model=16",
        "task.params.num_train=200", "task.params.num_test=40", "train.batch_size=16"]  # fmt: skip


def test_a_published_study_has_no_checkpoints_and_continues_as_a_run_tree(tmp_path, capsys):
    runs = tmp_path / "runs"
    assert cli.main([*ARGS, "--out", str(runs)]) == 0
    published = tmp_path / "results"
    report = publish_study.publish(runs, published)
    assert (report / "report.md").is_file()
    assert not list(published.rglob("checkpoint.pt"))
    assert len(list(published.rglob("model.safetensors"))) == 2  # the pictures' two runs
    copied = sorted(p.parent.relative_to(published) for p in published.rglob("summary.json"))
    assert copied == sorted(p.parent.relative_to(runs) for p in runs.rglob("summary.json"))
    assert all((published / run / "request.json").is_file() for run in copied)

    resumed = tmp_path / "resumed"
    shutil.copytree(published, resumed)
    capsys.readouterr()
    assert cli.main([*ARGS, "--out", str(resumed)]) == 0
    printed = capsys.readouterr().out
    assert "[run]" not in printed and printed.count("[skip]") == len(copied)
