"""Copy a study's finished runs from its run tree into results/ and regenerate its report.

    .venv/bin/python scripts/publish_study.py runs/study/mnist1d results/mnist1d

What is copied: per finished run (one with summary.json) of a cell whose tuning is done,
its config as requested and as resolved, summary, environment and metric log; every cell's
selection.json and the tree's protocol.json. Checkpoints are never copied, and weights only for
the two runs the report's pictures are drawn from (the first finished global_conv result and the
first attention result on the same task). Run it again as the study goes on: it only adds and
refreshes files. Because the request is kept, a copy of a published study is a run tree that
``globalconv compare`` continues: its finished runs are read back, not trained again.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from globalconv.analysis import report
from globalconv.train.rundir import SELECTION, RunDir, find_runs

RUN_FILES = (RunDir.REQUEST, RunDir.CONFIG, RunDir.SUMMARY, RunDir.ENV, RunDir.METRICS)


def publish(source: Path, dest: Path) -> Path:
    for run in find_runs(source, finished=True):
        if not (run.path.parent / SELECTION).is_file():
            continue  # its cell is still tuning: published with its choice, next time
        target = dest / run.path.relative_to(source)
        target.mkdir(parents=True, exist_ok=True)
        for name in RUN_FILES:
            if (run.path / name).is_file():
                shutil.copy2(run.path / name, target / name)
    for record in [*source.rglob(SELECTION), *source.glob("protocol.json")]:
        target = dest / record.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(record, target)
    results = [r for r in report.collect_runs(dest) if r.role == "result"]
    conv = next((r for r in results if r.mixer == "global_conv"), None)
    attention = conv and next(
        (r for r in results if r.mixer == "attention" and r.task == conv.task), None
    )
    for result in (conv, attention):
        if result is not None:
            weights = RunDir(source / result.path.relative_to(dest)).weights_path
            shutil.copy2(weights, result.files.weights_path)
    return report.build_report(dest, dest / "report")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: publish_study.py RUNS_DIR RESULTS_DIR")
    print(publish(Path(sys.argv[1]), Path(sys.argv[2])) / "report.md")
