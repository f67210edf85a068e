"""``globalconv bench gpu`` (``make bench-gpu``): the GPU measurements in one go, about 8 minutes.

On one CUDA device, in order, each part writing JSON into ``--out`` that ``globalconv report``
reads (``bench*.json`` and the suite's runs):

- ``op``: ``globalconv bench op`` (the operator against the FFT floor and SDPA attention, the
  memory part) from L = 1K to 64K -> ``bench-op.json``;
- ``mixers``: ``globalconv bench mixers`` forward and forward+backward of the mixers from 1K to
  64K, attention through SDPA (flash kernels in bf16/fp16, memory-efficient ones in fp32)
  -> ``bench-mixers.json``;
- ``flash``: causal global convolution through FlashFFTConv (bf16, where the package is
  installed) beside the ``fft`` path (fp32) and causal SDPA attention (bf16), forward+backward
  -> ``bench-flash.json``; skipped, and said so, where ``flashfftconv`` is not importable;
- ``suite``: the quick comparison suite trained on the GPU -> ``quick/``;
- ``report``: ``globalconv report OUT``.

``--dry-run`` prints the commands without running anything (it needs no GPU).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from globalconv.analysis import bench
from globalconv.core import io
from globalconv.core.errors import ConfigError

PARTS = ("op", "mixers", "flash", "suite", "report")
SIZES = [2**k for k in range(10, 17)]  # 1K .. 64K
MIXERS = "attention,global_conv,gated_global_conv,hyena,fnet"


def plan(args: argparse.Namespace) -> list[tuple[str, list[str] | None]]:
    """(part, ``globalconv`` argv) in order; the flash part is measured here (argv None)."""
    out, sizes = Path(args.out), ",".join(map(str, args.sizes))
    device = ["--device", args.device]
    steps = [] if args.suite_steps is None else ["--steps", str(args.suite_steps)]
    commands = {
        "op": ["bench", "op", *device, "--parts", "table,memory", "--sizes", sizes,
               "--dim", str(args.dim), "--attention-max-len", str(max(args.sizes)),
               "--json", str(out / "bench-op.json"), "-q"],
        "mixers": ["bench", "mixers", *device, "--sizes", sizes, "--mixers", MIXERS,
                   "--dim", str(args.dim), "--max-seconds", "2",
                   "--json", str(out / "bench-mixers.json"), "-q"],
        "flash": None,
        "suite": ["compare", "--suite", "quick", "--out", str(out / "quick"), "-q", *steps,
                  f"train.device={args.device}"],
        "report": ["report", str(out)],
    }  # fmt: skip
    return [(part, commands[part]) for part in args.parts]


def measure_flash(args: argparse.Namespace) -> dict[str, Any]:
    """Forward+backward of causal global convolution (FlashFFTConv, bf16; fft path, fp32) and
    causal SDPA attention (bf16) at each length, B=4, D=``--dim``, 4 heads."""
    import torch.nn.functional as F

    from globalconv import ops

    if importlib.util.find_spec("flashfftconv") is None:
        return {"skipped": "flashfftconv is not installed (pip install flashfftconv)"}
    device, B, D, H = args.device, 4, args.dim, 4
    records = []
    for L in args.sizes:
        g = torch.Generator(device=device).manual_seed(0)
        x = torch.randn(B, L, D, device=device, generator=g)
        k = torch.randn(L, D, device=device, generator=g) / L
        q = torch.randn(B, H, L, D // H, device=device, generator=g, dtype=torch.bfloat16)

        def conv(x: torch.Tensor, k: torch.Tensor, dtype: torch.dtype, backend: str):
            xd, kd = x.to(dtype).requires_grad_(True), k.to(dtype).requires_grad_(True)
            return lambda: ops.global_conv(xd, kd, mode="causal", backend=backend).sum().backward()

        qg = q.clone().requires_grad_(True)
        candidates = {
            "global_conv causal, flashfftconv bf16": conv(x, k, torch.bfloat16, "auto"),
            "global_conv causal, fft fp32": conv(x, k, torch.float32, "fft"),
            "attention causal, SDPA bf16": lambda qg=qg: (
                F.scaled_dot_product_attention(qg, qg, qg, is_causal=True).sum().backward()
            ),
        }
        rounds = bench.time_rounds(candidates, repeats=5, warmup=2, device=device)
        for name, times in rounds.items():
            records.append(
                {
                    "name": name,
                    "pass": "forward+backward",
                    "L": L,
                    "level": "op",
                    "median_ms": 1e3 * statistics.median(times),
                    "min_ms": 1e3 * min(times),
                    "max_ms": 1e3 * max(times),
                    "peak_mb": None,
                }
            )
        if not args.quiet:
            print(f"  flash: measured L={L}", flush=True)
    return {"batch": B, "dim": D, "records": records}


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    p = bench.subcommands(subparsers).add_parser(
        "gpu",
        help="every GPU measurement in one go (op, mixers, FlashFFTConv, a suite), ~8 minutes",
        description=__doc__,
        epilog="examples:\n  globalconv bench gpu                      # what make bench-gpu runs\n"
        "  globalconv bench gpu --dry-run\n"
        "  globalconv bench gpu --parts op,mixers --sizes 1024,8192 --out runs/gpu-short",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", default="runs/gpu", help="directory for the results (default runs/gpu)")
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated ({', '.join(PARTS)})")
    p.add_argument(
        "--sizes", type=bench.int_list, default=SIZES, help="lengths (default 1024..65536)"
    )
    p.add_argument("--dim", type=int, default=256, help="channels D (default 256)")
    p.add_argument("--suite-steps", type=int, help="steps per suite run (default: the suite's)")
    p.add_argument("--device", default="cuda", help="cuda or cuda:N (default cuda)")
    p.add_argument("--dry-run", action="store_true", help="print the commands and exit")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from globalconv import cli

    parts = [t.strip() for t in args.parts.split(",") if t.strip()]
    unknown = [t for t in parts if t not in PARTS]
    if not parts or unknown:
        raise ConfigError(f"--parts takes {', '.join(PARTS)}; got {args.parts!r}")
    args.parts = [t for t in PARTS if t in parts]  # always in the order above
    if args.dim < 1 or (args.suite_steps is not None and args.suite_steps < 1):
        raise ConfigError("--dim and --suite-steps must be >= 1")
    commands = plan(args)
    if args.dry_run:
        for part, argv in commands:
            print(
                f"{part}: "
                + ("measured in process" if argv is None else "globalconv " + " ".join(argv))
            )
        return 0
    if not args.device.startswith("cuda") or not torch.cuda.is_available():
        raise ConfigError(
            f"globalconv bench gpu needs a CUDA device (got --device {args.device}, CUDA "
            f"available: {torch.cuda.is_available()}); --dry-run shows what it would run"
        )
    Path(args.out).mkdir(parents=True, exist_ok=True)
    print(f"globalconv bench gpu: {torch.cuda.get_device_name(args.device)} -> {args.out}")
    status = 0
    for part, argv in commands:
        start = time.perf_counter()
        if argv is None:
            result = measure_flash(args)
            if "skipped" in result:
                print(f"[flash] skipped: {result['skipped']}")
            else:
                device = torch.cuda.get_device_name(args.device)
                io.write_json(Path(args.out) / "bench-flash.json", {"device": device, **result})
            code = 0
        else:
            print(f"[{part}] globalconv {' '.join(argv)}", flush=True)
            code = cli.main(argv)
        print(f"[{part}] exit {code}, {time.perf_counter() - start:.0f} s", flush=True)
        status = status or code
    return status
