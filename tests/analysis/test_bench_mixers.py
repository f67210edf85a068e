import json

import pytest

from globalconv import cli
from globalconv.analysis.bench_mixers import fit_slope


def test_fit_slope_recovers_exponents():
    assert fit_slope([(L, 3.0 * L**2) for L in (64, 128, 256)]) == pytest.approx(2.0)
    assert fit_slope([(L, 5.0 * L) for L in (64, 1024)]) == pytest.approx(1.0)
    assert fit_slope([(64, 1.0)]) is None


def test_bench_mixers_writes_records_and_stops_impractical_mixers(tmp_path, capsys):
    out = tmp_path / "bench.json"
    args = ["bench", "mixers", "--mixers", "global_conv,attention,synthesizer_random", "-q"]
    args += ["--sizes", "16,32", "--dim", "8", "--repeats", "1", "--warmup", "0"]
    args += ["--max-params", "1000", "--json", str(out), "--plot", str(tmp_path / "p.png")]
    assert cli.main(args) == 0
    text = capsys.readouterr().out
    assert "attention / this" in text and "slope" in text
    data = json.loads(out.read_text())
    timed = [r for r in data["records"] if "median_ms" in r]
    assert {(r["name"], r["pass"], r["L"]) for r in timed} >= {
        ("attention", "forward", 32),
        ("global_conv", "forward+backward", 32),
    }
    assert all(r["min_ms"] <= r["median_ms"] <= r["max_ms"] and r["peak_mb"] >= 0 for r in timed)
    # a 16x16 weight table per head is past --max-params=1000: left out and said so
    assert any(r["name"] == "synthesizer_random" and "stopped" in r for r in data["records"])
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


def test_bench_mixers_bad_input(capsys):
    assert cli.main(["bench", "mixers", "--mixers", "nope"]) == 2
    assert "unknown mixer(s) nope" in capsys.readouterr().err
    assert cli.main(["bench", "mixers", "--passes", "sideways"]) == 2
