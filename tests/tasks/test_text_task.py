"""Text: the stdlib manifest, the recorded hash, windows and held-out splits, user files."""

import hashlib
import sysconfig
from pathlib import Path

import pytest
import torch

from globalconv import tasks
from globalconv.tasks import text


def stdlib_prefix(n: int) -> bytes:
    root, names = text.stdlib_manifest()
    data = b""
    for name in names:
        data += (root / name).read_bytes()
        if len(data) >= n:
            return data[:n]
    raise AssertionError("the stdlib is smaller than the test expects")


def test_stdlib_manifest_is_sorted_filtered_and_stdlib_only():
    root, names = text.stdlib_manifest()
    assert root == Path(sysconfig.get_paths()["stdlib"])
    assert names == sorted(names) and len(names) > 100
    assert "json/decoder.py" in names and "os.py" in names
    for name in names:
        parts = name.split("/")
        assert name.endswith(".py")
        assert not text.EXCLUDED_DIRS.intersection(parts[:-1]), name


def test_manifest_skips_third_party_and_tests(tmp_path):
    for rel in [
        "a.py",
        "pkg/b.py",
        "pkg/notes.txt",
        "site-packages/x/c.py",
        "test/d.py",
        "pkg/tests/e.py",
        "dist-packages/f.py",
    ]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    _, names = text.stdlib_manifest(tmp_path)
    assert names == ["a.py", "pkg/b.py"]


@pytest.fixture(scope="module")
def stdlib_task():
    task = tasks.build("text", dict(max_bytes=120_000, seq_len=64))
    return task, task.splits()


def test_stdlib_corpus_is_recorded_and_deterministic(stdlib_task):
    task, splits = stdlib_task
    info = task.info
    assert info["source"] == "python-stdlib" and info["bytes"] == 120_000
    assert info["sha256"] == hashlib.sha256(stdlib_prefix(120_000)).hexdigest()
    assert info["files"] == len(text.stdlib_manifest()[1])
    again = tasks.build("text", dict(max_bytes=120_000, seq_len=64))
    assert again.info == info
    assert torch.equal(again.splits()["test"].inputs, splits["test"].inputs)


def test_windows_are_next_byte_prediction_over_contiguous_splits(stdlib_task):
    task, splits = stdlib_task
    spec = task.spec
    assert spec.metric == "bits_per_token" and spec.causal and spec.vocab_size == 256
    stream = torch.tensor(list(stdlib_prefix(120_000)))
    starts = {"train": 0, "valid": 120_000 - 6_000 - 6_000, "test": 120_000 - 6_000}
    for name, split in splits.items():
        assert split.inputs.shape[1] == 64 and split.inputs.dtype == torch.int64
        flat = split.inputs.reshape(-1)
        s = starts[name]
        assert torch.equal(flat, stream[s : s + len(flat)])
        assert torch.equal(split.targets.reshape(-1), stream[s + 1 : s + 1 + len(flat)])
    # the training windows end before validation text begins
    assert splits["train"].inputs.numel() + 1 <= starts["valid"]


def test_user_files_in_order(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_bytes(b"hello world " * 50)
    b.write_bytes("ünïcode bytes ".encode() * 50)
    task = tasks.build("text", dict(files=[str(b), str(a)], seq_len=16))
    data = b.read_bytes() + a.read_bytes()
    assert task.info["sha256"] == hashlib.sha256(data).hexdigest()
    assert task.info["files"] == [str(b), str(a)]
    first = task.splits()["train"].inputs[0]
    assert bytes(first.tolist()) == data[:16]


def test_missing_or_too_small_text_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        tasks.build("text", dict(files=[str(tmp_path / "nope.txt")])).splits()
    (tmp_path / "tiny.txt").write_text("x" * 300)
    with pytest.raises(ValueError, match="fewer than seq_len"):
        tasks.build("text", dict(files=[str(tmp_path / "tiny.txt")], seq_len=64)).splits()
    with pytest.raises(ValueError, match="below 0.5"):
        tasks.build("text", dict(valid_fraction=0.3, test_fraction=0.3))
