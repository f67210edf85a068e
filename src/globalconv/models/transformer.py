"""The Transformer of "Attention Is All You Need" with the self-attention swapped for any mixer.

    x = embed(inputs) [* sqrt(D) for tokens] + positions      # (B, L, D)
    repeat N times:   x = LN(x + drop(mixer(x)))               # post-LN, as in the paper
                      x = LN(x + drop(ffn(x)))                 # (pre-LN: x + drop(f(LN(x))))
    head: mean over the true length -> classes  |  per token -> classes / next-token logits

Blocks accept an optional cross-attention sublayer, so an encoder-decoder keeps its
cross-attention while both stacks' self-attention is replaced.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from globalconv import mixers
from globalconv.config import ModelConfig
from globalconv.core.errors import ConfigError, SequenceTooLongError
from globalconv.models.dropout import Dropout

Head = Literal["sequence", "token"]


class FeedForward(nn.Module):
    """Position-wise FFN: Linear(D, D_ff) -> activation -> dropout -> Linear(D_ff, D)."""

    def __init__(self, d_model: int, d_ff: int, dropout: float, activation: str) -> None:
        super().__init__()
        self.up = nn.Linear(d_model, d_ff)
        self.down = nn.Linear(d_ff, d_model)
        self.activation = {"relu": F.relu, "gelu": F.gelu}[activation]
        self.dropout = Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:  # (B, L, D)
        return self.down(self.dropout(self.activation(self.up(x))))

    def flops(self, L: int) -> int:
        return 4 * L * self.up.in_features * self.up.out_features


class CrossAttention(nn.Module):
    """Multi-head attention from decoder positions to encoder memory (kept in encoder-decoders)."""

    def __init__(self, d_model: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if d_model % heads:
            raise ConfigError(
                f"cross-attention: d_model={d_model} is not divisible by heads={heads}"
            )
        self.heads = heads
        self.dropout = dropout
        self.q = nn.Linear(d_model, d_model)
        self.kv = nn.Linear(d_model, 2 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x: Tensor, memory: Tensor, memory_lengths: Tensor | None = None) -> Tensor:
        B, L, D = x.shape
        M, H = memory.shape[1], self.heads
        q = self.q(x).view(B, L, H, D // H).transpose(1, 2)
        k, v = self.kv(memory).view(B, M, 2, H, D // H).permute(2, 0, 3, 1, 4)
        mask = None
        if memory_lengths is not None:
            mask = (torch.arange(M, device=x.device)[None, :] < memory_lengths[:, None])[
                :, None, None
            ]
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        return self.out(y.transpose(1, 2).reshape(B, L, D))

    def flops(self, L: int, M: int) -> int:
        D = self.q.in_features
        return 4 * L * D * D + 4 * M * D * D + 4 * L * M * D


class Block(nn.Module):
    """Mixer, optional cross-attention, and FFN sublayers, each with residual, dropout and LN."""

    def __init__(
        self,
        mixer: mixers.TokenMixer,
        ffn: FeedForward,
        *,
        dropout: float,
        norm: Literal["post", "pre"],
        cross_attention: CrossAttention | None = None,
    ) -> None:
        super().__init__()
        d_model = mixer.d_model
        self.mixer = mixer
        self.cross_attention = cross_attention
        self.ffn = ffn
        self.pre_norm = norm == "pre"
        self.norms = nn.ModuleList(
            nn.LayerNorm(d_model) for _ in range(3 if cross_attention else 2)
        )
        self.dropout = Dropout(dropout)

    def _sublayer(self, x: Tensor, norm: nn.LayerNorm, fn) -> Tensor:
        if self.pre_norm:
            return x + self.dropout(fn(norm(x)))
        return norm(x + self.dropout(fn(x)))

    def forward(
        self,
        x: Tensor,
        lengths: Tensor | None = None,
        memory: Tensor | None = None,
        memory_lengths: Tensor | None = None,
    ) -> Tensor:  # (B, L, D)
        x = self._sublayer(x, self.norms[0], lambda h: self.mixer(h, lengths))
        if self.cross_attention is not None:
            if memory is None:
                raise ValueError("this block has cross-attention and needs the encoder memory")
            cross = lambda h: self.cross_attention(h, memory, memory_lengths)  # noqa: E731
            x = self._sublayer(x, self.norms[1], cross)
        return self._sublayer(x, self.norms[-1], self.ffn)


def token_embedding(vocab_size: int, d_model: int) -> nn.Embedding:
    """Token table for ids scaled by sqrt(D) in the forward pass, as in the paper.

    Initialised N(0, 1/D), so that the scaled embeddings have unit variance like the positions;
    torch's N(0, 1) default would make them sqrt(D) times larger and drown the positions.
    """
    embedding = nn.Embedding(vocab_size, d_model)
    nn.init.normal_(embedding.weight, std=d_model**-0.5)
    return embedding


def sinusoidal_positions(length: int, d_model: int) -> Tensor:
    """PE[t, 2i] = sin(t / 10000^(2i/D)), PE[t, 2i+1] = cos(...), as in the paper. (L, D)"""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    rate = torch.exp(
        torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model)
    )
    pe = torch.zeros(length, d_model)
    pe[:, 0::2] = torch.sin(position * rate)
    pe[:, 1::2] = torch.cos(position * rate)[:, : d_model // 2]
    return pe


def select_positions(x: Tensor, positions: Tensor | None) -> Tensor:
    """(B, L, D) -> (S, D) rows at flat indices ``positions`` into B*L; all of x when None."""
    if positions is None:
        return x
    return x.reshape(-1, x.shape[-1]).index_select(0, positions)


def resolved_positions(cfg: ModelConfig) -> str:
    """The configured position encoding, or by default sinusoidal when any layer's mixer
    needs positions (``TokenMixer.needs_positions``) and none otherwise."""
    if cfg.positions is not None:
        return cfg.positions
    needed = any(mixers.get(name).needs_positions for name, _ in cfg.layer_mixers())
    return "sinusoidal" if needed else "none"


class Transformer(nn.Module):
    """Embedding, positions, N blocks, and a sequence- or token-level head.

    Inputs are token ids (B, L) int64 when ``vocab_size`` is given, or real values (B, L) /
    (B, L, input_dim) otherwise. ``forward(inputs, lengths)`` returns logits (B, num_outputs)
    for the sequence head and (B, L, num_outputs) for the token head.
    """

    def __init__(
        self,
        cfg: ModelConfig,
        *,
        max_len: int,
        num_outputs: int,
        head: Head = "sequence",
        causal: bool = False,
        vocab_size: int | None = None,
        input_dim: int | None = None,
    ) -> None:
        super().__init__()
        if (vocab_size is None) == (input_dim is None):
            raise ValueError(
                "give exactly one of vocab_size (token inputs) or input_dim (real inputs)"
            )
        if head not in ("sequence", "token"):
            raise ValueError(f"unknown head {head!r}; expected 'sequence' or 'token'")
        self.cfg = cfg
        self.max_len = max_len
        self.head_kind = head
        self.causal = causal
        self.vocab_size = vocab_size
        self.input_dim = input_dim
        D = cfg.d_model
        if vocab_size is not None:
            self.embed: nn.Module = token_embedding(vocab_size, D)
        else:
            self.embed = nn.Linear(input_dim, D)
        self.positions = resolved_positions(cfg)
        if self.positions == "learned":
            self.pos_embed = nn.Parameter(torch.randn(max_len, D) * 0.02)
        elif self.positions == "sinusoidal":
            self.register_buffer("pos_table", sinusoidal_positions(max_len, D), persistent=False)
        self.dropout = Dropout(cfg.dropout)
        d_ff = cfg.resolved_d_ff()
        self.blocks = nn.ModuleList(
            Block(
                mixers.build(name, d_model=D, max_len=max_len, causal=causal, **options),
                FeedForward(D, d_ff, cfg.dropout, cfg.activation),
                dropout=cfg.dropout,
                norm=cfg.norm,
            )
            for name, options in cfg.layer_mixers()
        )
        self.final_norm = nn.LayerNorm(D) if cfg.norm == "pre" else nn.Identity()
        self.head = nn.Linear(D, num_outputs)

    def embed_inputs(self, inputs: Tensor) -> Tensor:  # -> (B, L, D)
        L = inputs.shape[1]
        if L > self.max_len and (
            self.positions == "learned" or not all(b.mixer.length_free for b in self.blocks)
        ):  # sinusoidal positions and length-free mixers run at any length
            raise SequenceTooLongError(
                f"input length {L} exceeds the model's max_len={self.max_len}; "
                "build the model with a larger max_len"
            )
        if self.vocab_size is not None:
            if inputs.dtype not in (torch.int64, torch.int32):
                raise ValueError(f"token inputs must be integer ids, got {inputs.dtype}")
            x = self.embed(inputs) * math.sqrt(self.cfg.d_model)
        else:
            if inputs.dim() == 2:
                inputs = inputs[..., None]
            if inputs.shape[-1] != self.input_dim:
                raise ValueError(
                    f"expected {self.input_dim} input features, got {inputs.shape[-1]}"
                )
            x = self.embed(inputs.float())
        if self.positions == "learned":
            x = x + self.pos_embed[:L]
        elif self.positions == "sinusoidal":
            table = self.pos_table if L <= self.max_len else sinusoidal_positions(L, x.shape[-1])
            x = x + table[:L].to(x.device)
        return self.dropout(x)

    def features(self, inputs: Tensor, lengths: Tensor | None = None) -> Tensor:  # (B, L, D)
        x = self.embed_inputs(inputs)
        if lengths is not None:  # whatever the padding holds (NaN features too) stays out
            x = x.masked_fill(~mixers.valid_mask(lengths, x.shape[1], x.device), 0)
        for block in self.blocks:
            x = block(x, lengths)
        return self.final_norm(x)

    def forward(
        self, inputs: Tensor, lengths: Tensor | None = None, positions: Tensor | None = None
    ) -> Tensor:
        """positions: (S,) int64 indices into the flattened (B*L) positions of a token head;
        the head is then computed at those positions alone and the result is (S, C). A task
        that scores a few positions (MQAR's queries) skips the head everywhere else."""
        x = self.features(inputs, lengths)
        if self.head_kind == "token":
            return self.head(select_positions(x, positions))  # (B, L, C) or (S, C)
        if positions is not None:
            raise ValueError("positions selects token-head outputs; this model has a sequence head")
        if lengths is None:
            pooled = x.mean(1)
        else:
            padding = ~mixers.valid_mask(lengths, x.shape[1], x.device)
            pooled = x.masked_fill(padding, 0).sum(1) / lengths[:, None].to(x.dtype)
        return self.head(pooled)  # (B, C)

    def save_pretrained(self, save_directory: str | Path, **hub_kwargs: Any) -> Any:
        """Save in the Hub format: config.json (the constructor's arguments) and
        model.safetensors, through huggingface_hub's mixin (``pip install 'globalconv[hf]'``);
        ``hub_kwargs`` go to ``PyTorchModelHubMixin.save_pretrained`` (``push_to_hub``, ...)."""
        from globalconv.models.hub import as_hub_model

        return as_hub_model(self).save_pretrained(save_directory, **hub_kwargs)

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, **hub_kwargs: Any) -> Transformer:
        """Load a model written by ``save_pretrained`` (a local directory, or a Hub repository
        id, downloaded only then); weights are loaded strictly."""
        from globalconv.models.hub import HubTransformer

        return HubTransformer.from_pretrained(name_or_path, **hub_kwargs)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def flops(self, L: int) -> int:
        """Analytic forward FLOPs for one sequence of length L (multiply-add = 2; norms,
        activations and softmax of the head not counted)."""
        D = self.cfg.d_model
        total = 0 if self.vocab_size is not None else 2 * L * self.input_dim * D
        for block in self.blocks:
            total += block.mixer.flops(L) + block.ffn.flops(L)
        head_positions = L if self.head_kind == "token" else 1
        return total + 2 * head_positions * D * self.head.out_features
