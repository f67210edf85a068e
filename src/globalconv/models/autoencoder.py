"""A bottleneck autoencoder for MAD's compression task (Poli et al. 2024, athms/mad-lab).

The encoder is the Transformer with any mixer; its output at the last true position (the
compression token) is the only thing the decoder sees. The decoder rebuilds every position from
that one vector plus the position's sinusoidal code, through a small per-position MLP, as
MAD's AutoEncoder backbone does (LN, Linear, GELU, LN, Linear, GELU, LN, then the output
layer), so the mixers must pack the whole sequence into one token:

    z = encoder(inputs)[:, n-1]                     # (B, D)
    logits[:, t] = head(mlp(z + PE[t]))             # (B, L, V) for t < L
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from globalconv.config import ModelConfig
from globalconv.models.transformer import Transformer, sinusoidal_positions


class AutoEncoder(Transformer):
    """``forward(inputs, lengths)`` -> (B, L, num_outputs) logits, all read from one token."""

    def __init__(
        self, cfg: ModelConfig, *, max_len: int, num_outputs: int, vocab_size: int, causal: bool
    ) -> None:
        super().__init__(
            cfg,
            max_len=max_len,
            num_outputs=num_outputs,
            head="token",
            causal=causal,
            vocab_size=vocab_size,
        )
        D = cfg.d_model
        self.register_buffer("queries", sinusoidal_positions(max_len, D), persistent=False)
        self.decoder = nn.Sequential(
            nn.LayerNorm(D), nn.Linear(D, D), nn.GELU(),
            nn.LayerNorm(D), nn.Linear(D, D), nn.GELU(),
            nn.LayerNorm(D),
        )  # fmt: skip

    def forward(self, inputs: Tensor, lengths: Tensor | None = None) -> Tensor:
        x = self.features(inputs, lengths)  # (B, L, D)
        B, L, _ = x.shape
        last = torch.full((B,), L - 1, device=x.device) if lengths is None else lengths - 1
        code = x[torch.arange(B, device=x.device), last]  # (B, D): the bottleneck
        return self.head(self.decoder(code[:, None, :] + self.queries[:L]))  # (B, L, C)

    def flops(self, L: int) -> int:
        D = self.cfg.d_model
        decoder = 2 * L * 2 * D * D  # two D x D layers per position
        return super().flops(L) + decoder
