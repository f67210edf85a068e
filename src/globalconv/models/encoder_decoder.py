"""The encoder-decoder of "Attention Is All You Need", with both stacks' self-attention swapped.

    memory = Encoder(inputs)                       # N blocks: mixer (bidirectional), FFN
    h      = Decoder(decoder_inputs, memory)       # N blocks: mixer (causal), cross-attn, FFN
    logits = Linear(h)                             # (B, T, num_outputs), one per target position

Each block is ``transformer.Block``: sublayers with residual, dropout and LayerNorm (post-LN as in
the paper, or pre-LN). The configured mixer replaces self-attention in both stacks, causal in
the decoder so position t sees decoder inputs up to t only. Cross-attention from decoder to
encoder is always multi-head attention: it is how the decoder reads a source of another length,
and the question here is whether self-attention can be replaced. It has as many heads as the
mixer's ``heads`` option when the mixer has one, else attention's default (4).

Kept from the paper: token embeddings scaled by sqrt(D), positions added to both stacks (the
model config's ``positions``, resolved as in ``Transformer``), teacher forcing. Left out: the
shared source/target embedding and output matrix (separate here, like ``Transformer``'s head),
label smoothing and beam search (the tasks score teacher-forced per-token accuracy).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from globalconv import mixers
from globalconv.config import ModelConfig
from globalconv.core.errors import SequenceTooLongError
from globalconv.models.dropout import Dropout
from globalconv.models.transformer import (
    Block,
    CrossAttention,
    FeedForward,
    resolved_positions,
    select_positions,
    sinusoidal_positions,
    token_embedding,
)


class Embedding(nn.Module):
    """Token ids (B, L) -> embedding * sqrt(D) + positions, then dropout: (B, L, D)."""

    def __init__(self, cfg: ModelConfig, vocab_size: int, max_len: int) -> None:
        super().__init__()
        D = cfg.d_model
        self.d_model, self.max_len = D, max_len
        self.tokens = token_embedding(vocab_size, D)
        self.positions = resolved_positions(cfg)
        if self.positions == "learned":
            self.pos_embed = nn.Parameter(torch.randn(max_len, D) * 0.02)
        elif self.positions == "sinusoidal":
            self.register_buffer("pos_table", sinusoidal_positions(max_len, D), persistent=False)
        self.dropout = Dropout(cfg.dropout)

    def forward(self, ids: Tensor) -> Tensor:
        L = ids.shape[1]
        if L > self.max_len:
            raise SequenceTooLongError(
                f"input length {L} exceeds the model's max_len={self.max_len}; "
                "build the model with a larger max_len"
            )
        if ids.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"token inputs must be integer ids, got {ids.dtype}")
        x = self.tokens(ids) * math.sqrt(self.d_model)
        if self.positions == "learned":
            x = x + self.pos_embed[:L]
        elif self.positions == "sinusoidal":
            x = x + self.pos_table[:L]
        return self.dropout(x)


class EncoderDecoder(nn.Module):
    """Sequence-to-sequence over token ids.

    ``forward(inputs, lengths, decoder_inputs, decoder_lengths)``: source ids (B, S) with true
    lengths (B,), decoder inputs (B, T) (BOS + the target shifted right) with true lengths (B,);
    returns logits (B, T, num_outputs). ``max_len`` bounds both S and T.
    """

    def __init__(
        self,
        cfg: ModelConfig,
        *,
        max_len: int,
        num_outputs: int,
        vocab_size: int,
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.max_len = max_len
        D, d_ff = cfg.d_model, cfg.resolved_d_ff()
        self.encoder_embed = Embedding(cfg, vocab_size, max_len)
        self.decoder_embed = Embedding(cfg, vocab_size, max_len)

        def block(name: str, options: dict, causal: bool) -> Block:
            cross = None
            if causal:
                heads = options.get("heads", mixers.options("attention")["heads"])
                cross = CrossAttention(D, heads, dropout=cfg.dropout)
            return Block(
                mixers.build(name, d_model=D, max_len=max_len, causal=causal, **options),
                FeedForward(D, d_ff, cfg.dropout, cfg.activation),
                dropout=cfg.dropout,
                norm=cfg.norm,
                cross_attention=cross,
            )

        layers = cfg.layer_mixers()
        self.encoder = nn.ModuleList(block(name, opts, causal=False) for name, opts in layers)
        self.decoder = nn.ModuleList(block(name, opts, causal=True) for name, opts in layers)
        pre = cfg.norm == "pre"  # pre-LN stacks end with a LayerNorm
        self.encoder_norm = nn.LayerNorm(D) if pre else nn.Identity()
        self.decoder_norm = nn.LayerNorm(D) if pre else nn.Identity()
        self.head = nn.Linear(D, num_outputs)

    def encode(self, inputs: Tensor, lengths: Tensor | None = None) -> Tensor:  # (B, S, D)
        x = self.encoder_embed(inputs)
        for block in self.encoder:
            x = block(x, lengths)
        return self.encoder_norm(x)

    def decode(
        self,
        decoder_inputs: Tensor,
        memory: Tensor,
        memory_lengths: Tensor | None = None,
        decoder_lengths: Tensor | None = None,
        positions: Tensor | None = None,
    ) -> Tensor:  # (B, T, num_outputs), or (S, num_outputs) at flat indices positions into B*T
        y = self.decoder_embed(decoder_inputs)
        for block in self.decoder:
            y = block(y, decoder_lengths, memory=memory, memory_lengths=memory_lengths)
        return self.head(select_positions(self.decoder_norm(y), positions))

    def forward(
        self,
        inputs: Tensor,
        lengths: Tensor | None = None,
        decoder_inputs: Tensor | None = None,
        decoder_lengths: Tensor | None = None,
        positions: Tensor | None = None,
    ) -> Tensor:
        if decoder_inputs is None:
            raise ValueError(
                "the encoder-decoder needs decoder_inputs (BOS + the target shifted right)"
            )
        memory = self.encode(inputs, lengths)
        return self.decode(decoder_inputs, memory, lengths, decoder_lengths, positions)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def flops(self, L: int, T: int | None = None) -> int:
        """Analytic forward FLOPs for a source of length L and a target of length T (default L);
        multiply-add = 2, norms, activations and the softmax of the head not counted."""
        T = L if T is None else T
        total = sum(b.mixer.flops(L) + b.ffn.flops(L) for b in self.encoder)
        for b in self.decoder:
            total += b.mixer.flops(T) + b.cross_attention.flops(T, L) + b.ffn.flops(T)
        return total + 2 * T * self.cfg.d_model * self.head.out_features
