"""What a parameter or a file asks for is bounded before anything is allocated (issue class 2)."""

import io
import zipfile

import numpy as np
import pytest

from globalconv import tasks
from globalconv.tasks.base import MAX_COUNT, MAX_LEN, MAX_TOKENS


@pytest.mark.parametrize(
    "name, params, message",
    [
        ("mqar", {"seq_len": 100_000_000}, "seq_len=100,000,000 exceeds the limit of 16,777,216"),
        ("mqar", {"num_train": 10**12}, "num_train=1,000,000,000,000 exceeds the limit"),
        ("mqar", {"vocab_size": 2**40}, "vocab_size=1,099,511,627,776 exceeds"),
        ("induction", {"num_symbols": 2**30}, "num_symbols=1,073,741,824 exceeds"),
        ("parity", {"seq_len": 2**21}, "exceed the limit of 1,048,576"),
        ("parity", {"seq_len": 2**20, "num_train": 4096}, "exceed the limit of 2,147,483,648"),
        ("listops", {"max_len": 2**22, "min_len": 4}, "exceed the limit of 1,048,576"),
        ("mqar", {"seed": 2**40}, "seed"),
    ],
)
def test_generated_task_sizes_are_bounded_naming_the_value_and_the_limit(name, params, message):
    with pytest.raises(ValueError, match=message):
        tasks.build(name, params)


def test_limits_are_what_the_messages_say():
    assert (MAX_COUNT, MAX_LEN, MAX_TOKENS) == (2**24, 2**20, 2**31)


def _npz(path, **arrays):
    base = {
        "train_inputs": np.zeros((4, 6), dtype=np.int64),
        "train_targets": np.zeros(4, dtype=np.int64),
        "test_inputs": np.zeros((2, 6), dtype=np.int64),
        "test_targets": np.zeros(2, dtype=np.int64),
    }
    np.savez(path, **{**base, **arrays})
    return str(path)


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"train_targets": np.array([0, 1, 2, 10**12])}, "label 1,000,000,000,000 exceeds"),
        ({"train_inputs": np.full((4, 6), 2**40)}, "token id 1,099,511,627,776 exceeds"),
        ({"train_inputs": np.full((4, 6), 2**64 - 2, dtype=np.uint64)}, "token id .* exceeds"),
        ({"train_targets": np.full(4, 2**64 - 1, dtype=np.uint64)}, "label .* exceeds"),
    ],
)
def test_ids_and_labels_in_a_file_are_bounded_before_a_model_is_sized_by_them(
    tmp_path, arrays, message
):
    path = _npz(tmp_path / "d.npz", **arrays)
    with pytest.raises(ValueError, match=message):
        _ = tasks.build("files", {"path": path}).spec


def test_a_header_that_declares_a_petabyte_is_refused_before_allocating(tmp_path):
    path = tmp_path / "bomb.npz"
    _npz(path)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<i8", "fortran_order": False, "shape": (2**25, 2**25)}
    )
    with zipfile.ZipFile(path, "a") as z:
        z.writestr("valid_inputs.npy", header.getvalue() + b"\0" * 64)
    with pytest.raises(ValueError, match=r"'valid_inputs' declares shape .* but the file holds"):
        _ = tasks.build("files", {"path": str(path)}).spec


def test_a_file_within_the_limits_still_loads(tmp_path):
    spec = tasks.build("files", {"path": _npz(tmp_path / "ok.npz")}).spec
    assert (spec.max_len, spec.vocab_size) == (6, 1)


@pytest.mark.parametrize(
    "overrides",
    [
        ["model.d_model=10000000"],
        ["model.mixer=mlp_mixer", "model.mixer_options.hidden=1000000000"],
        ["model.mixer_options.kernel=implicit", "model.mixer_options.kernel_options.width=10**7"],
        ["model.d_ff=1000000000"],
        ["model.n_layers=64", "model.d_model=16384"],
    ],
)
def test_a_model_too_large_to_hold_is_refused_before_allocating(overrides):
    from globalconv import config as C
    from globalconv.models import MAX_MODEL_SIZE, build_model

    overrides = [o.replace("10**7", "10000000") for o in overrides]
    cfg = C.load(None, overrides)
    spec = tasks.build("parity", {"seq_len": 64}).spec
    with pytest.raises(ValueError, match=f"over the limit of {MAX_MODEL_SIZE:,}"):
        build_model(cfg.model, spec)


def test_batch_sizes_are_bounded():
    from globalconv import config as C

    with pytest.raises(C.ConfigError, match="train.batch_size: Input should be less than or"):
        C.load(None, ["train.batch_size=100000000"])
