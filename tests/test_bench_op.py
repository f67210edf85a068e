"""`globalconv bench op` runs end to end at tiny sizes (a smoke test: no timing is asserted)."""

import json

import pytest

from globalconv import cli
from globalconv.ops import native

TINY = [
    "bench", "op", "--sizes", "16", "--modes", "circular,full", "--batch", "2", "--dim", "8",
    "--heads", "2", "--repeats", "1", "--warmup", "0", "--crossover-lengths", "8,16",
    "--model-len", "16", "--model-layers", "1", "--model-steps", "1", "-q",
]  # fmt: skip


def test_every_part_runs_and_writes_its_numbers(tmp_path, capsys):
    out = tmp_path / "bench.json"
    parts = ["--parts", "table,breakdown,crossover,memory,model", "--json", str(out)]
    assert cli.main(TINY + parts) == 0
    text = capsys.readouterr().out
    for column in [
        "op/floor",
        "pocket/floor",
        "fwd/floor",
        "pocket fwd/floor",
        "layout/floor",
        "plain/op",
        "attn/mixer",
        "auto/best",
        "peak/input",
        "tokens/s",
    ]:
        assert column in text
    if native.available():
        columns = ("native/floor", "native fwd/floor", "fft/native", "native peak/input")
        assert all(column in text for column in columns)
    data = json.loads(out.read_text())
    table = {r["mode"]: r for r in data["table"]}
    assert table["circular"]["op_s"] > 0 and table["circular"]["attention_s"] > 0
    native_keys = ("native_s", "native_forward_s")  # None where the kernel cannot be built
    for row in data["table"]:  # every FFT path, forward+backward and forward only
        paths = ("forward_s", "pocketfft_s", "pocketfft_forward_s")
        paths += native_keys if native.available() else ()
        assert min(row[k] for k in paths) > 0
    if native.available():
        assert all(r["native_s"] > 0 for r in data["crossover"])
        memory = data["memory"]
        assert all(r["native_peak_over_input"] > r["native_saved_over_input"] > 0 for r in memory)
    else:
        assert all(row[k] is None for row in data["table"] for k in native_keys)
    assert table["circular"]["plain_s"] > 0 and table["full"]["plain_s"] is None
    assert table["full"]["attention_s"] is None  # no mixer runs the full mode
    assert [r["L"] for r in data["crossover"] if r["mode"] == "circular"] == [8, 16]
    assert all(r["peak_over_input"] > r["saved_over_input"] > 0 for r in data["memory"])
    assert {r["mixer"] for r in data["model"]} == {"global_conv", "attention"}
    for row in data["breakdown"]:  # the profiler saw the transforms and the layout changes
        shares = [row[f"{group}_share"] for group in ("transforms", "layout", "products", "other")]
        assert row["transforms_share"] > 0 and row["layout_share"] > 0
        assert sum(shares) == pytest.approx(1.0) and min(shares) >= 0


def test_bad_input_exits_2(capsys):
    assert cli.main(TINY + ["--dim", "6", "--heads", "4"]) == 2
    assert "--dim 6 must be divisible by --heads 4" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        cli.main(TINY + ["--parts", "tables"])
    assert exit_.value.code == 2
    assert "unknown tables; choose from table" in capsys.readouterr().err


def test_help_names_the_benchmark(capsys):
    with pytest.raises(SystemExit):
        cli.main(["bench", "--help"])
    assert "op" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["bench", "op", "--help"])
    assert "FFT floor" in capsys.readouterr().out
