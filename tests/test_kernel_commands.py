"""The kernel commands: `globalconv kernels` (pictures) and `globalconv lengths` (experiment)."""

import json

import pytest
import torch
from matplotlib.image import imread

from globalconv import cli
from globalconv.analysis.lengths import motif_majority

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def implicit_run(tmp_path_factory):
    """A run directory written by ``globalconv train`` (two steps on MNIST-1D)."""
    path = tmp_path_factory.mktemp("runs") / "implicit"
    args = ["train", "-q", "--out", str(path), "train.steps=2", "model.d_model=8"]
    assert cli.main(args + ["model.n_layers=2", "model.mixer_options.kernel=implicit"]) == 0
    return path


def untrained_run(path, *overrides):
    """A run directory as train writes it, from an untrained model (no data generated)."""
    from globalconv import config, tasks
    from globalconv.core import io
    from globalconv.models import build_model

    cfg = config.load(None, ["model.d_model=8", *overrides])
    model = build_model(cfg.model, tasks.build(cfg.task.name, cfg.task.params).spec)
    io.write_json(path / "config.json", cfg.model_dump(mode="json"))
    io.write_safetensors(path / "model.safetensors", model.state_dict())
    return path


def test_kernels_command_writes_one_valid_png_per_layer(implicit_run, tmp_path, capsys):
    out = tmp_path / "pictures"
    assert cli.main(["kernels", str(implicit_run), "--out", str(out), "--channels", "3"]) == 0
    printed = capsys.readouterr().out.split()
    pngs = sorted(out.glob("*.png"))
    assert [p.name for p in pngs] == ["blocks.0.mixer.kernel.png", "blocks.1.mixer.kernel.png"]
    assert sorted(printed) == sorted(str(p) for p in pngs)
    for p in pngs:
        assert p.read_bytes()[:8] == PNG_SIGNATURE
        image = imread(p)
        assert image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 500
        assert image[..., :3].std() > 0.05  # something is drawn
    # an implicit kernel can be drawn past max_len (mnist1d: 40)
    assert (
        cli.main(["kernels", str(implicit_run), "--out", str(tmp_path / "long"), "--length", "80"])
        == 0
    )


def test_kernels_command_errors_are_one_line_and_exit_2(implicit_run, tmp_path, capsys):
    explicit = untrained_run(tmp_path / "explicit")
    assert cli.main(["kernels", str(explicit), "--out", str(tmp_path / "p"), "--length", "80"]) == 2
    assert "exceeds max_len=40; set resample=True" in capsys.readouterr().err
    attention = untrained_run(tmp_path / "attention", "model.mixer=attention")
    assert cli.main(["kernels", str(attention), "--out", str(tmp_path / "p")]) == 2
    assert "has no convolution kernels to plot" in capsys.readouterr().err
    assert cli.main(["kernels", str(tmp_path / "missing"), "--out", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "config.json does not exist" in err


def test_motif_majority_labels_follow_the_rule_at_every_length():
    for length in [16, 64, 257]:
        split = motif_majority(200, length, seed=length)
        x, y = split.inputs, split.targets
        ab = ((x == 0) & (torch.roll(x, -1, 1) == 1)).sum(1)  # circular: no motif across the end
        ba = ((x == 1) & (torch.roll(x, -1, 1) == 0)).sum(1)
        assert torch.equal(y, (ab > ba).long())
        assert ((ab + ba) == max(1, round(0.1 * length))).all()  # no stray a/b: only motifs
        assert 0.35 < y.double().mean() < 0.65
    assert torch.equal(motif_majority(5, 32, 3).inputs, motif_majority(5, 32, 3).inputs)
    with pytest.raises(ValueError, match="lower the density or raise the length"):
        motif_majority(5, 4, 0, density=0.5)


def test_lengths_command_prints_a_table_and_writes_json(tmp_path, capsys):
    out = tmp_path / "lengths.json"
    args = [
        "lengths",
        "-q",
        "--models",
        "explicit,implicit,attention-learned",
        "--train-len",
        "16",
        "--factors",
        "0.5,2",
        "--steps",
        "3",
        "--n-train",
        "64",
        "--n-test",
        "20",
        "--d-model",
        "8",
        "--layers",
        "1",
        "--lr",
        "1e-2",
        "--out",
        str(out),
    ]
    assert cli.main(args) == 0
    text = capsys.readouterr().out
    assert "16 (1x)" in text and "8 (0.5x)" in text and "32 (2x)" in text
    for label in ["explicit", "explicit, resampled", "implicit", "attention, learned"]:
        assert f"\n{label} " in text
    results = json.loads(out.read_text())
    assert results["lr"] == 1e-2 and "(lr 0.01)" in text
    accuracy = results["accuracy"]
    assert accuracy["explicit"]["32"] == [None] and accuracy["attention, learned"]["32"] == [None]
    assert 0 <= accuracy["explicit, resampled"]["32"][0] <= 1
    assert 0 <= accuracy["implicit"]["32"][0] <= 1
    assert accuracy["explicit"]["16"] == accuracy["explicit, resampled"]["16"]  # same weights


def test_lengths_command_rejects_bad_input(capsys):
    assert cli.main(["lengths", "--models", "nope"]) == 2
    assert "unknown model(s) nope; available: explicit" in capsys.readouterr().err
    assert cli.main(["lengths", "--factors", "2,x"]) == 2
    assert "--factors must be comma-separated numbers" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:  # argparse's usage error
        cli.main(["lengths", "--lr", "0"])
    assert exit_.value.code == 2
    assert "--lr: expected a number > 0, got '0'" in capsys.readouterr().err


@pytest.mark.slow
def test_lengths_experiment_learns_the_task_at_the_training_length():
    from globalconv.analysis.lengths import run

    results = run(models=["explicit", "implicit"], steps=400, n_test=200, progress=False)
    for label in ["explicit", "implicit"]:
        assert results["accuracy"][label]["64"][0] > 0.9
    assert results["accuracy"]["explicit"]["32"][0] > 0.9  # cropping keeps absolute offsets
