"""``globalconv tasks``: every task with its parameters and metric."""

import json

import pytest

from globalconv import cli, tasks


def test_lists_every_task_with_parameters_and_metric(capsys):
    assert cli.main(["tasks"]) == 0
    out = capsys.readouterr().out
    for name in tasks.available():
        assert f"\n{name}: " in f"\n{out}", name
    assert "num_kv_pairs: int = 4" in out and "power_a: float = 0.01" in out
    assert "path: str = (required)" in out
    assert "metric: bits_per_token" in out and "metric: accuracy" in out


def test_json_output_and_selection(capsys):
    assert cli.main(["tasks", "--json", "listops", "text"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert [e["name"] for e in entries] == ["listops", "text"]
    params = {p["name"]: p for p in entries[0]["params"]}
    assert params["max_len"]["default"] == 2000 and params["max_depth"]["type"] == "int"
    assert params["cache_dir"]["type"] == "str | null"
    assert entries[1]["metrics"] == ["bits_per_token"]


def test_unknown_task_exits_2(capsys):
    assert cli.main(["tasks", "nope"]) == 2
    assert "unknown task 'nope'" in capsys.readouterr().err


def test_help_has_examples(capsys):
    with pytest.raises(SystemExit):
        cli.main(["tasks", "--help"])
    assert "globalconv tasks mqar listops" in capsys.readouterr().out
