"""``globalconv kernels RUN_DIR --out DIR``: pictures of a trained model's convolution kernels."""

from __future__ import annotations

import argparse

from globalconv.arguments import positive_int

EXAMPLES = """examples:
  globalconv train model.mixer=global_conv --out runs/gc
  globalconv kernels runs/gc --out runs/gc/kernels
  globalconv kernels runs/gc --out pictures --channels 4 --length 80   # resampled or implicit
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "kernels",
        help="plot a trained run's convolution kernels (taps and spectra) as PNG",
        description=(
            "Rebuild the model of a run directory (config.json + model.safetensors) and write "
            "one PNG per convolution kernel: taps over offset for every channel (image), a few "
            "channels' taps (curves) and their magnitude spectra."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory from globalconv train")
    p.add_argument("--out", required=True, help="directory for the PNG files")
    p.add_argument(
        "--channels", type=positive_int, default=8, help="channels drawn as curves (default 8)"
    )
    p.add_argument(
        "--length",
        type=positive_int,
        help="evaluate the kernel at this length (default: max_len); longer needs an implicit "
        "kernel or resample=True",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from globalconv.analysis.kernel_plots import plot_run

    for path in plot_run(args.run_dir, args.out, channels=args.channels, length=args.length):
        print(path)
    return 0
