"""Everything written into a run directory is checked when read, and a damaged file is named
(issue classes 3 and 9): each file, damaged two ways, read by every command that reads it."""

import pytest

from globalconv import cli
from globalconv.core import io

from .conftest import TINY

FILES = [
    "config.json",
    "request.json",
    "env.json",
    "summary.json",
    "model.safetensors",
    "metrics.jsonl",
    "checkpoint.pt",
    io.MANIFEST,
]

# the commands that read each file (every one of them is read by `runs`)
READERS = {
    "config.json": ["runs", "eval", "report", "resume"],
    "request.json": ["runs", "sweep"],
    "env.json": ["runs"],
    "summary.json": ["runs", "report", "resume"],
    "model.safetensors": ["runs", "eval"],
    "metrics.jsonl": ["runs", "report"],
    "checkpoint.pt": ["runs"],
    io.MANIFEST: ["runs", "eval", "report", "resume"],
}


def flip(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x20  # a changed letter or digit: the JSON may stay valid
    path.write_bytes(bytes(data))


def truncate(path):
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) * 2 // 3])


def command(name, run):
    return {
        "runs": ["runs", str(run.parent)],
        "eval": ["eval", str(run)],
        "report": ["report", str(run.parent), "--out", str(run.parent / "report")],
        "resume": ["train", "--resume", str(run), "-q"],
        "sweep": ["train", *TINY, "--seeds", "0", "--out", str(run.parent), "-q"],
    }[name]


CASES = [(f, d, r) for f in FILES for d in ("flip", "truncate") for r in READERS[f]]


@pytest.mark.parametrize("filename, damage, reader", CASES)
def test_each_damaged_file_is_named_by_each_command_that_reads_it(
    run_copy, filename, damage, reader, capsys
):
    if reader == "sweep":  # where `train --seeds 0` puts its run
        run_copy = run_copy.rename(run_copy.parent / "seed=0")
    path = run_copy / filename
    (flip if damage == "flip" else truncate)(path)
    code = cli.main(command(reader, run_copy))
    captured = capsys.readouterr()
    said = captured.out + captured.err
    assert filename in said and "damaged" in said or "not valid" in said, said
    assert str(path) in said or filename in said
    if reader != "runs":
        assert code == 2, said
    else:
        assert "damaged" in said.splitlines()[2], said  # the run's status, not "done"


def test_an_intact_run_reads_cleanly(run_copy, capsys):
    for reader in ("runs", "eval", "resume"):
        assert cli.main(command(reader, run_copy)) == 0
    assert "damaged" not in capsys.readouterr().out


def test_a_damaged_run_does_not_stop_the_listing_of_the_others(finished_run, run_copy, capsys):
    import shutil

    shutil.copytree(finished_run, run_copy.parent / "good")
    (run_copy / "config.json").write_text("{ not json")
    assert cli.main(["runs", str(run_copy.parent)]) == 0
    out = capsys.readouterr().out
    assert "good" in out and " done " in out and f"damaged: {run_copy / 'config.json'}" in out


def test_report_blames_config_json_when_that_is_the_broken_file(run_copy, capsys):
    (run_copy / "config.json").write_text("{ not json")
    (run_copy / io.MANIFEST).unlink()  # a run from before checksums: still the right file
    assert cli.main(command("report", run_copy)) == 2
    err = capsys.readouterr().err
    assert "config.json is not valid JSON" in err and "summary.json" not in err


def test_a_process_killed_between_manifest_and_file_leaves_a_readable_file(tmp_path):
    path = tmp_path / "summary.json"
    io.write_json(path, {"a": 1}, checksum=True)
    old = path.read_bytes()
    io.write_json(path, {"a": 2}, checksum=True)
    path.write_bytes(old)  # as if the rename of the new file never happened
    assert io.read_json(path) == {"a": 1}
