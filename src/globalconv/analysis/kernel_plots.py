"""Pictures of a trained model's convolution kernels (``globalconv kernels RUN_DIR --out DIR``).

For every kernel module in the model (one per global-convolution layer) one PNG: the taps over
offset for all channels as an image, the taps of a few channels as curves, and those channels'
magnitude spectra (|rfft| of the taps, in dB over normalised frequency). The model is the run
directory's (``RunDir.load_model``: its ``config.json`` and ``model.safetensors``).
"""

from __future__ import annotations

import io as bytes_io
from pathlib import Path

import torch
from torch import Tensor, nn

from globalconv.core import io
from globalconv.core.errors import ConfigError
from globalconv.kernels.base import Kernel, offsets
from globalconv.train.rundir import RunDir


def kernel_modules(model: nn.Module) -> list[tuple[str, Kernel]]:
    """(dotted name, module) of every kernel parameterisation in the model."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, Kernel)]


def plot_kernel(k: Tensor, mode: str, title: str, channels: int) -> bytes:
    """PNG bytes: taps (rows, D) over offset as an image and as curves, and their spectra."""
    from matplotlib.figure import Figure

    k = k.detach().double().cpu()
    rows, D = k.shape
    n = (rows + 1) // 2 if mode == "full" else rows
    x = offsets(n, mode).numpy()
    shown = list(range(min(channels, D)))
    fig = Figure(figsize=(11, 8), layout="constrained")
    top, middle, bottom = fig.subplots(3, 1)
    fig.suptitle(title)

    limit = float(k.abs().max()) or 1.0
    image = top.imshow(
        k.t().numpy(),
        aspect="auto",
        cmap="RdBu_r",
        vmin=-limit,
        vmax=limit,
        extent=(x[0] - 0.5, x[-1] + 0.5, D - 0.5, -0.5),
        interpolation="nearest",
    )
    top.set(xlabel="offset s", ylabel="channel", title=f"taps k[s, c], all {D} channels")
    fig.colorbar(image, ax=top)

    for c in shown:
        middle.plot(x, k[:, c].numpy(), lw=1, label=f"c={c}")
    middle.axhline(0, color="grey", lw=0.5)
    middle.set(xlabel="offset s", ylabel="k[s, c]", title=f"taps, channels {shown}")
    middle.legend(fontsize="small", ncols=min(len(shown), 8))

    spectrum = torch.fft.rfft(k, dim=0).abs()  # (rows//2+1, D)
    frequency = torch.arange(spectrum.shape[0]) / rows
    decibels = 20 * torch.log10(spectrum.clamp_min(1e-12))
    for c in shown:
        bottom.plot(frequency.numpy(), decibels[:, c].numpy(), lw=1, label=f"c={c}")
    bottom.set(
        xlabel="frequency (cycles per tap)",
        ylabel="|rfft(k)| (dB)",
        title="magnitude spectrum",
    )

    buffer = bytes_io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def plot_run(
    run_dir: str | Path, out: str | Path, *, channels: int = 8, length: int | None = None
) -> list[Path]:
    """Write one PNG per kernel of the run's model into ``out``; return their paths."""
    if channels < 1:
        raise ConfigError(f"channels must be >= 1, got {channels}")
    run = RunDir(run_dir)
    model = run.load_model()
    found = kernel_modules(model)
    if not found:
        raise ConfigError(
            f"the model of {run_dir} (mixer {run.run_config().model.mixer}) has no convolution "
            "kernels to plot"
        )
    written = []
    with torch.no_grad():
        for name, kernel in found:
            n = length or kernel.max_len
            title = (
                f"{name}: {kernel.name} kernel, mode {kernel.mode}, length {n} "
                f"(max_len {kernel.max_len}) - {Path(run_dir).name}"
            )
            path = Path(out) / f"{name}.png"
            io.write_bytes(path, plot_kernel(kernel(n), kernel.mode, title, channels))
            written.append(path)
    return written


__all__ = ["kernel_modules", "plot_kernel", "plot_run"]
