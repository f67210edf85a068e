import json

import pytest

from globalconv import cli, tasks
from globalconv import config as C
from globalconv.train import train
from globalconv.train.matching import match, measure, reference_config

SPEC = tasks.build("mnist1d").spec  # length 40 (the spec needs no data)


@pytest.mark.parametrize("by", ["params", "flops"])
@pytest.mark.parametrize("dimension", ["width", "depth"])
def test_global_conv_is_sized_to_attention_within_tolerance(by, dimension):
    tolerance = 0.05 if dimension == "width" else 0.1
    cfg = C.load(
        None,
        [f"match.by={by}", f"match.dimension={dimension}", f"match.tolerance={tolerance}"],
    )
    resolved, record = match(cfg, SPEC)
    target = measure(reference_config(cfg), SPEC, by)
    value = measure(resolved.model, SPEC, by)
    assert record["reference_value"] == target and record["value"] == value
    assert abs(value / target - 1) <= tolerance
    assert record["relative_error"] == pytest.approx(value / target - 1)
    changed = "d_model" if dimension == "width" else "n_layers"
    assert getattr(resolved.model, changed) != getattr(cfg.model, changed)  # it had to move
    # no other size is closer
    for step in (-1, 1):
        neighbour = resolved.model.model_copy(
            update={changed: getattr(resolved.model, changed) + step}
        )
        assert abs(measure(neighbour, SPEC, by) - target) >= abs(value - target)
    again, record_again = match(resolved, SPEC)  # the saved config matches to the same size
    assert again == resolved and record_again == record


def test_widths_the_mixer_cannot_take_are_skipped():
    # attention with 8 heads matched to global_conv: only multiples of 8 build
    cfg = C.load(
        None,
        [
            "model.mixer=attention",
            "model.mixer_options.heads=8",
            "match.by=flops",
            "match.reference=global_conv",
            "match.tolerance=0.2",
        ],
    )
    resolved, _ = match(cfg, SPEC)
    assert resolved.model.d_model % 8 == 0


def test_out_of_tolerance_is_an_error_naming_the_closest_size():
    cfg = C.load(None, ["match.by=params", "match.dimension=depth", "match.tolerance=0.001"])
    with pytest.raises(C.ConfigError, match=r"closest is n_layers=\d+ with"):
        match(cfg, SPEC)


def test_the_run_records_what_was_matched(tmp_path):
    tiny = ["model.d_model=16", "model.n_layers=1", "train.threads=1", "train.batch_size=32"]
    tiny += ["task.params.valid_fraction=0.1"]
    cfg = C.load(None, [*tiny, "train.steps=2", "match.by=params", "match.tolerance=0.1"])
    s = train(cfg, tmp_path / "r", progress=False)
    assert s.match["by"] == "params" and s.match["reference"] == "attention"
    assert s.d_model == s.match["size"]["d_model"] != 16
    assert abs(s.params / s.match["reference_value"] - 1) <= 0.1
    saved = C.parse(json.loads((tmp_path / "r" / "config.json").read_text()))
    assert saved.model.d_model == s.d_model and saved.match.reference_d_model == 16


def test_compare_match_flag(tmp_path, capsys):
    args = ["compare", "-q", "--steps", "1", "--out", str(tmp_path), "--match", "flops"]
    args += ["--tasks", "mnist1d", "--mixers", "attention,global_conv"]
    args += ["model.d_model=16", "model.n_layers=1", "train.threads=1", "match.tolerance=0.1"]
    args += ["task.params.valid_fraction=0.1"]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    rows = {line.split()[1]: line.split() for line in out.splitlines() if "mnist1d" in line}
    assert rows["attention"][2] == "16" and rows["global_conv"][2] != "16"  # d_model column
