"""``globalconv bench mixers``: speed and memory of every mixer (or model) versus length.

For each length L, every mixer still in the race runs forward, and forward+backward, on the same
(B, L, D) input, timed in interleaved rounds (``analysis.bench``) and summarised by the median
and the spread (min..max of the rounds); peak extra memory is the largest live size of the
tensors a call creates. A mixer leaves the race at the first length where one call takes longer
than ``--max-seconds`` or its parameters would pass ``--max-params`` (a quadratic weight table
at 16K positions), and the table says so. Ratios to attention are measured side by side in one
process, so they hold on a busy machine. ``--level model`` times a whole Transformer (embedding,
blocks, head) instead of one mixer. ``--json`` writes every record (``globalconv report`` reads
``bench*.json`` in a runs directory) and ``--plot`` a log-log picture with fitted slopes.
"""

from __future__ import annotations

import argparse
import math
import statistics
from typing import Any

import torch

from globalconv import mixers
from globalconv.analysis import bench
from globalconv.arguments import nonnegative_int, positive_float, positive_int
from globalconv.core import io
from globalconv.core.errors import ConfigError
from globalconv.core.tables import format_table

PASSES = ("forward", "forward+backward")


def fit_slope(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of log(y) against log(x): the exponent of y ~ x^k."""
    if len(points) < 2:
        return None
    xs = [math.log(x) for x, _ in points]
    ys = [math.log(y) for _, y in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else None


def _module(name: str, level: str, L: int, D: int, layers: int, device: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if level == "mixer":
        return mixers.build(name, d_model=D, max_len=L).to(device)
    from globalconv.config import ModelConfig
    from globalconv.models import Transformer

    cfg = ModelConfig(mixer=name, d_model=D, n_layers=layers, dropout=0.0)
    return Transformer(cfg, max_len=L, num_outputs=10, input_dim=D).to(device)


def _params_at(name: str, level: str, L: int, D: int, layers: int) -> int:
    with torch.device("meta"):  # shapes only: nothing allocated
        return sum(p.numel() for p in _module(name, level, L, D, layers, "meta").parameters())


def _steps(module: torch.nn.Module, x: torch.Tensor) -> dict[str, Any]:
    def forward() -> None:
        with torch.no_grad():
            module(x)

    def forward_backward() -> None:
        module.zero_grad(set_to_none=True)
        x.grad = None
        module(x).float().square().mean().backward()

    return {"forward": forward, "forward+backward": forward_backward}


def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    alive = list(args.mixers)
    records: list[dict[str, Any]] = []
    for L in args.sizes:
        candidates, params, stopped = {}, {}, []
        for name in alive:
            n_params = _params_at(name, args.level, L, args.dim, args.layers)
            if n_params > args.max_params:
                stopped.append((name, f"{n_params:,} parameters at L={L} > --max-params"))
                continue
            module = _module(name, args.level, L, args.dim, args.layers, args.device)
            g = torch.Generator(device=args.device).manual_seed(1)
            x = torch.randn(args.batch, L, args.dim, device=args.device, generator=g)
            x.requires_grad_(True)
            for kind, fn in _steps(module, x).items():
                if kind in args.passes:
                    candidates[(name, kind)] = fn
            params[name] = n_params
        rounds = bench.time_rounds(
            candidates, repeats=args.repeats, warmup=args.warmup, device=args.device
        )
        for (name, kind), times in rounds.items():
            record = {
                "name": name,
                "pass": kind,
                "L": L,
                "level": args.level,
                "params": params[name],
                "median_ms": 1e3 * statistics.median(times),
                "min_ms": 1e3 * min(times),
                "max_ms": 1e3 * max(times),
                "peak_mb": None,
            }
            if args.memory:
                record["peak_mb"] = bench.peak_bytes(candidates[(name, kind)]) / 2**20
            records.append(record)
        for name in {n for n, _ in rounds}:
            slowest = max(r["median_ms"] for r in records if r["name"] == name and r["L"] == L)
            if slowest / 1e3 > args.max_seconds:
                stopped.append((name, f"{slowest / 1e3:.1f} s per call at L={L} > --max-seconds"))
        for name, why in stopped:
            if name in alive:
                alive.remove(name)
                records.append({"name": name, "L": L, "stopped": why})
        if not args.quiet:
            print(f"  measured L={L}", flush=True)
        if not alive:
            break
    return records


def print_tables(records: list[dict[str, Any]], reference: str = "attention") -> None:
    timed = [r for r in records if "median_ms" in r]
    for kind in dict.fromkeys(r["pass"] for r in timed):
        rows = []
        ref = {
            r["L"]: r["median_ms"] for r in timed if r["pass"] == kind and r["name"] == reference
        }
        for r in (r for r in timed if r["pass"] == kind):
            rows.append(
                [
                    r["name"],
                    r["L"],
                    f"{r['median_ms']:.2f}",
                    f"{r['min_ms']:.2f}..{r['max_ms']:.2f}",
                    None if r["peak_mb"] is None else f"{r['peak_mb']:.1f}",
                    bench.ratio(ref.get(r["L"]), r["median_ms"]),
                ]
            )
        print(f"\n{kind} (median of interleaved rounds)")
        header = ["mixer", "L", "ms", "spread ms", "peak MB", f"{reference} / this"]
        print(format_table(header, rows))
    slopes = []
    for name, kind in dict.fromkeys((r["name"], r["pass"]) for r in timed):
        points = [(r["L"], r["median_ms"]) for r in timed if (r["name"], r["pass"]) == (name, kind)]
        tail = [p for p in points if p[0] >= max(x for x, _ in points) / 4]  # the last 4x
        slope = fit_slope(tail)
        slopes.append([name, kind, None if slope is None else f"{slope:.2f}"])
    print("\nlog-log slope of time over the longest 4x of lengths (1: linear, 2: quadratic)")
    print(format_table(["mixer", "pass", "slope"], slopes))
    for r in records:
        if "stopped" in r:
            print(f"stopped: {r['name']}: {r['stopped']}")


def plot(records: list[dict[str, Any]], path: str, device: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timed = [r for r in records if "median_ms" in r]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, kind in dict.fromkeys((r["name"], r["pass"]) for r in timed):
        points = sorted(
            (r["L"], r["median_ms"]) for r in timed if (r["name"], r["pass"]) == (name, kind)
        )
        slope = fit_slope(points[-3:])
        label = f"{name} {kind}" + ("" if slope is None else f" (slope {slope:.2f})")
        ax.loglog(
            *zip(*points, strict=True),
            marker="o",
            ms=3,
            ls="-" if "back" in kind else "--",
            label=label,
        )
    ax.set_xlabel("sequence length L")
    ax.set_ylabel("milliseconds (median)")
    ax.set_title(f"time per call on {device}")
    ax.legend(fontsize=6)
    fig.tight_layout()
    import io as bytes_io

    buffer = bytes_io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    io.write_bytes(path, buffer.getvalue())


def device_name(device: str) -> str:
    if torch.device(device).type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    threads = torch.get_num_threads()
    return (
        f"CPU ({platform.processor() or platform.machine()}, {threads} thread{'s' * (threads > 1)})"
    )


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    p = bench.subcommands(subparsers).add_parser(
        "mixers",
        help="speed and memory of every mixer (or model) versus length",
        description=__doc__,
        epilog="examples:\n  globalconv bench mixers\n"
        "  globalconv bench mixers --mixers attention,global_conv --sizes 1024,4096,16384\n"
        "  globalconv bench mixers --level model --json runs/compare/bench.json --plot speed.png",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--mixers",
        default="attention,global_conv,gated_global_conv,hyena,fnet",
        help="comma-separated mixers; 'all' for every registered one",
    )
    p.add_argument(
        "--sizes",
        type=bench.int_list,
        default=[2**k for k in range(6, 15)],
        help="lengths (default 64,128,...,16384)",
    )
    p.add_argument(
        "--level",
        choices=["mixer", "model"],
        default="mixer",
        help="time one mixer, or a whole Transformer (default mixer)",
    )
    p.add_argument("--passes", default="forward,forward+backward", help="forward, forward+backward")
    p.add_argument("--batch", type=positive_int, default=1, help="batch size B (default 1)")
    p.add_argument("--dim", type=positive_int, default=256, help="width D (default 256)")
    p.add_argument("--layers", type=positive_int, default=4, help="model level: layers (default 4)")
    p.add_argument("--repeats", type=positive_int, default=5, help="timed rounds (default 5)")
    p.add_argument(
        "--warmup", type=nonnegative_int, default=1, help="untimed rounds first (default 1)"
    )
    p.add_argument(
        "--max-seconds",
        type=positive_float,
        default=2.0,
        help="drop a mixer past this many seconds per call (default 2)",
    )
    p.add_argument(
        "--max-params",
        type=positive_int,
        default=50_000_000,
        help="skip a mixer whose parameters would pass this (default 5e7)",
    )
    p.add_argument("--no-memory", dest="memory", action="store_false", help="skip peak memory")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument(
        "--threads", type=positive_int, help="torch CPU threads (default: torch's choice)"
    )
    p.add_argument("--json", help="write every record to this JSON file")
    p.add_argument("--plot", help="write a log-log PNG of time versus length")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    names = (
        mixers.available()
        if args.mixers == "all"
        else [m.strip() for m in args.mixers.split(",") if m.strip()]
    )
    unknown = [m for m in names if m not in mixers.available()]
    if not names or unknown:
        raise ConfigError(
            f"unknown mixer(s) {', '.join(unknown) or '(none)'}; available: "
            f"{', '.join(mixers.available())}"
        )
    args.passes = [p.strip() for p in args.passes.split(",")]
    if not set(args.passes) <= set(PASSES) or not args.passes:
        raise ConfigError(f"--passes takes {', '.join(PASSES)}, got {args.passes}")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda asked for, but no CUDA device is available; use cpu")
    if args.threads:
        torch.set_num_threads(args.threads)
    args.mixers = sorted(names, key=lambda n: n != "attention")  # the reference first
    device = device_name(args.device)
    print(f"globalconv bench mixers: level {args.level}, B={args.batch}, D={args.dim}, {device}")
    records = measure(args)
    print_tables(records)
    if args.json:
        io.write_json(
            args.json,
            {
                "device": device,
                "batch": args.batch,
                "dim": args.dim,
                "level": args.level,
                "records": records,
            },
        )
    if args.plot:
        plot(records, args.plot, device)
    return 0
