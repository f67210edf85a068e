"""The committed reference studies: each report regenerates exactly from its committed runs."""

from pathlib import Path

import pytest

from globalconv.analysis import report

ROOT = Path(__file__).resolve().parents[1]
STUDIES = sorted(p.parent.parent for p in (ROOT / "results").glob("*/report/report.md"))


@pytest.mark.skipif(not STUDIES, reason="no committed study")
@pytest.mark.parametrize("study", STUDIES, ids=lambda p: p.name)
def test_the_committed_report_is_what_the_committed_runs_give(study, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # the report names the runs directory as it was given
    relative = study.relative_to(ROOT)
    out = report.build_report(relative, tmp_path / "report", width=256)
    committed = (study / "report" / "report.md").read_text()
    assert (out / "report.md").read_text() == committed, (
        f"results/{study.name}/report is stale: run `globalconv report {relative}` and commit it"
    )
