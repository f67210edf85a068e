"""FlashFFTConv on a CUDA device beside the operator's own FFT path and SDPA attention: the
``flash`` part of ``globalconv bench gpu``, the one measured in process.
"""

from __future__ import annotations

import importlib.util
import statistics
from typing import Any

import torch

from globalconv.analysis import bench


def measure_flash(
    sizes: list[int], *, dim: int, device: str, progress: bool = True
) -> dict[str, Any]:
    """Forward+backward of causal global convolution (FlashFFTConv, bf16; fft path, fp32) and
    causal SDPA attention (bf16) at each length of ``sizes``, B=4, D=``dim``, 4 heads; or
    ``{"skipped": why}`` where flashfftconv is not installed."""
    import torch.nn.functional as F

    from globalconv import ops

    if importlib.util.find_spec("flashfftconv") is None:
        return {"skipped": "flashfftconv is not installed (pip install flashfftconv)"}
    B, D, H = 4, dim, 4
    records = []
    for L in sizes:
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
        if progress:
            print(f"  flash: measured L={L}", flush=True)
    return {"batch": B, "dim": D, "records": records}


__all__ = ["measure_flash"]
