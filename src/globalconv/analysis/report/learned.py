"""What the mixers learned, in pictures: a trained global kernel, and its mixing matrix beside
attention's map on one input."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import torch

from globalconv.analysis.document import Image
from globalconv.analysis.kernel_plots import plot_kernel
from globalconv.analysis.report.runs import REFERENCE, Run
from globalconv.core import io


def mixing_section(runs: list[Run], out: Path) -> list:
    """A trained global kernel, and its mixing matrix beside attention's map on one input."""
    from globalconv import tasks
    from globalconv.analysis import mixing

    conv = next((r for r in runs if r.mixer == "global_conv" and r.files.has_weights), None)
    if conv is None:
        return []
    cfg, model = conv.files.run_config(), conv.files.load_model()
    kernel_module = model.blocks[0].mixer.kernel
    task = tasks.build(cfg.task.name, cfg.task.params)
    inputs, _ = task.splits()["test"].batch(torch.arange(1))
    L = inputs["inputs"].shape[1]
    with torch.no_grad():
        kernel = kernel_module(L)
    path = out / "global_conv_kernel.png"
    title = f"first-layer {kernel_module.name} kernel of {conv.path.name} ({conv.task})"
    io.write_bytes(path, plot_kernel(kernel, kernel_module.mode, title, channels=8))
    blocks = [
        Image(
            path,
            f"The {title}: taps over offset for every channel, a few channels' taps, "
            "and their magnitude spectra.",
        )
    ]
    attn = next(
        (r for r in runs if r.mixer == REFERENCE and r.task == conv.task and r.files.has_weights),
        None,
    )
    if attn is None or kernel_module.mode != "circular":
        return blocks
    attn_model = attn.files.load_model()
    with torch.no_grad():
        weights = mixing.attention_weights(
            attn_model.blocks[0].mixer, attn_model.embed_inputs(inputs["inputs"])[0]
        )
    matrix = mixing.circulant(kernel.detach())  # the skip term only adds the identity: left out
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.6))
    axes[0].imshow(matrix.abs().mean(0).numpy(), cmap="viridis")
    axes[0].set_title("global_conv |M| (fixed)")
    axes[1].imshow(weights.mean(0).numpy(), cmap="viridis")
    axes[1].set_title("attention weights (this input)")
    for ax in axes:
        ax.set_xlabel("input position j")
        ax.set_ylabel("output position t")
    fig.tight_layout()
    path = out / "mixing_vs_attention.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    blocks.append(
        Image(
            path,
            "First-layer token mixing on the same test input: the global convolution's "
            "circulant matrix (mean |M| over channels, skip term left out) is fixed; "
            "attention's is computed from the input.",
        )
    )
    return blocks
