"""Swap the self-attention of a Hugging Face ``transformers`` model for one of our mixers.

``replace_attention(model, mixer="global_conv", layers=None, **mixer_options)`` puts a
``MixerAttention`` in place of each chosen layer's self-attention module and keeps every other
weight (embeddings, norms, feed-forward networks, heads, cross-attention). Supported, by
``config.model_type`` (the classes of transformers 5 whose module layout this follows):

- ``bert``: ``BertModel`` and its heads (``BertForMaskedLM``, ``BertForSequenceClassification``,
  ...); ``layer.attention.self`` is replaced; ``crossattention`` (decoder BERT) is never touched.
  Bidirectional, or causal when ``config.is_decoder``.
- ``gpt2``: ``GPT2Model``, ``GPT2LMHeadModel``, ...; ``h[i].attn`` is replaced, ``crossattention``
  (``add_cross_attention``) is never touched. Causal.
- ``llama``: ``LlamaModel``, ``LlamaForCausalLM``, ...; ``layers[i].self_attn`` is replaced,
  grouped-query heads included. Causal. Rotary positions live inside attention, so a replaced
  layer has none: the convolution is itself position-aware (its taps are relative offsets).

Projections (``projections=``): ``"keep"`` (default) keeps the attention's pretrained value and
output projections around the mixer, ``y = O(mixer(V x))``, and drops the query and key
projections, which a convolution has no use for; with grouped-query attention each value head
is repeated for the query heads that shared it, as attention does. ``"drop"`` replaces the
whole sublayer with the mixer alone, ``y = mixer(x)`` (BERT's output projection, which sits
outside the attention module, becomes the identity; its LayerNorm and residual stay).

Padding: the model's 2D ``attention_mask`` (1 = token, 0 = padding, on either side, holes
included) is read by a forward pre-hook on the base model, since the attention modules only
receive it already expanded into the format of the attention implementation in use. Each
sequence's tokens are gathered to the front in order, mixed with our ``lengths`` contract, and
scattered back; padding positions give 0 before the output projection, and no token ever
depends on padding or on its batch mates.

Why module replacement and not ``transformers``' attention-function interface
(``AttentionInterface``, ``config._attn_implementation``): that interface is called with the
per-head queries, keys and values after the projections and rotary positions, so the query and
key projections would still be computed for nothing and could never be dropped; it has no
place for the mixer's own parameters (they would have to be hung on the attention module and
would not match the state dict of the original class); it receives the mask already expanded
(a 4D float or boolean mask, a flex ``BlockMask``, or None), not lengths; and it is one global
choice per config, where we replace chosen layers. A module in the attention's place owns its
parameters, appears in ``state_dict`` under its own names, and keeps the call signature and the
``(output, weights)`` return of the module it replaces.

Generation: our causal mixers keep no cache yet. ``replace_attention`` sets ``use_cache=False``
in the model's config and generation config, so ``generate`` feeds the whole prefix at every
step and the mixers recompute it (cost: see the README). A call with a cache
(``use_cache=True``), or with fewer tokens than its attention mask covers, is a ``ValueError``,
never a silent wrong result.

Saving: ``save_pretrained`` writes the usual config.json (now with ``globalconv_replacements``,
the arguments of each ``replace_attention`` call) and model.safetensors;
``globalconv.hf.from_pretrained(directory)`` rebuilds the architecture from the config, replays
the replacements and loads the weights. Nothing is downloaded.

Kernel length: ``global_conv`` with an explicit kernel has one tap per position up to
``max_len``, which defaults to the model's ``max_position_embeddings`` (GPT-2: ``n_positions``).
For long-context models pass ``max_len`` (the longest sequence you will run) or use a
length-free kernel (``kernel="implicit"``), whose parameters do not grow with length.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any, Literal

import torch
from torch import Tensor, nn

from globalconv import mixers
from globalconv.core.errors import ConfigError

SUPPORTED = ("bert", "gpt2", "llama")
Projections = Literal["keep", "drop"]
CONFIG_KEY = "globalconv_replacements"


class PaddingMask:
    """The 2D padding mask of the base model's current call, shared by its replaced layers."""

    def __init__(self) -> None:
        self.mask: Tensor | None = None  # (B, L), nonzero = token

    def capture(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        signature = inspect.signature(module.forward)
        try:
            bound = signature.bind_partial(*args, **kwargs).arguments
        except TypeError:
            bound = kwargs
        mask = bound.get("attention_mask")
        if mask is not None and mask.dim() != 2:
            raise ValueError(
                f"attention_mask of shape {tuple(mask.shape)}: layers swapped by "
                "globalconv.hf take the 2D (batch, length) padding mask"
            )
        self.mask = mask

    def clear(self, *_: Any) -> None:
        self.mask = None


class MixerAttention(nn.Module):
    """A token mixer in the place of a self-attention module: ``(hidden_states, ...)`` ->
    ``(output, None)``, the output being ``O(mixer(V x))`` (projections kept) or ``mixer(x)``."""

    def __init__(
        self,
        mixer: mixers.TokenMixer,
        padding: PaddingMask,
        *,
        value: nn.Module | None = None,
        output: nn.Module | None = None,
        value_heads: int = 1,
        head_repeat: int = 1,
        dropout: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.mixer = mixer
        self.value = value
        self.output = output
        self.value_heads = value_heads
        self.head_repeat = head_repeat  # grouped-query attention: query heads per value head
        self.dropout = dropout if dropout is not None else nn.Identity()
        self._padding = [padding]  # in a list: shared state, not a submodule

    def forward(self, hidden_states: Tensor, *args: Any, **kwargs: Any) -> tuple[Tensor, None]:
        x = hidden_states  # (B, L, D)
        B, L, _ = x.shape
        mask = self._padding[0].mask
        cache = kwargs.get("cache", kwargs.get("past_key_values"))
        if cache is not None or (mask is not None and mask.shape[1] != L):
            raise ValueError(
                f"{self.mixer.name} layers keep no cache: they recompute the whole prefix; "
                "call the model (or generate) with use_cache=False"
            )
        v = x if self.value is None else self.value(x)
        if self.head_repeat > 1:  # (B, L, Hkv*d) -> (B, L, Hkv*r*d), head h reads value h // r
            v = v.view(B, L, self.value_heads, 1, -1).expand(-1, -1, -1, self.head_repeat, -1)
            v = v.reshape(B, L, -1)
        y = mix(self.mixer, v, None if mask is None else mask != 0)
        if self.output is not None:
            y = self.output(y)
        return self.dropout(y), None


def mix(mixer: mixers.TokenMixer, x: Tensor, keep: Tensor | None) -> Tensor:
    """The mixer over each sequence's tokens only (``keep`` (B, L) True at tokens, anywhere):
    tokens are gathered to the front in order, mixed with ``lengths``, and put back."""
    if keep is None or bool(keep.all()):
        return mixer(x)
    L = x.shape[1]
    lengths = keep.sum(1)  # (B,)
    if bool((lengths == 0).any()):
        raise ValueError("attention_mask has a row with no tokens; drop that sequence")
    if torch.equal(keep, torch.arange(L, device=x.device)[None, :] < lengths[:, None]):
        return mixer(x, lengths)  # right padding: nothing to move
    order = torch.sort((~keep).to(torch.int8), dim=1, stable=True).indices  # tokens first
    index = order[..., None].expand_as(x)  # (B, L, D)
    y = mixer(x.gather(1, index), lengths)  # 0 from each sequence's length on
    return torch.zeros_like(y).scatter(1, index, y)


@dataclass(frozen=True)
class Replacement:
    """One replaced layer."""

    layer: int
    module: str  # path in the model, e.g. transformer.h.0.attn
    old: str  # class of the replaced module
    new: str  # the mixer
    params_before: int
    params_after: int


class ReplacementReport(list):
    """The replaced layers (``Replacement`` rows); ``str()`` is a table."""

    @property
    def params_before(self) -> int:
        return sum(r.params_before for r in self)

    @property
    def params_after(self) -> int:
        return sum(r.params_after for r in self)

    def as_dicts(self) -> list[dict[str, Any]]:
        return [asdict(r) for r in self]

    def __str__(self) -> str:
        header = ("layer", "module", "old", "new", "params before", "params after")
        rows = [
            (str(r.layer), r.module, r.old, r.new, f"{r.params_before:,}", f"{r.params_after:,}")
            for r in self
        ]
        rows.append(("all", "", "", "", f"{self.params_before:,}", f"{self.params_after:,}"))
        widths = [max(len(c) for c in col) for col in zip(header, *rows, strict=True)]
        line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))  # noqa: E731
        return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def _params(*modules: nn.Module) -> int:
    seen = {id(p): p for m in modules for p in m.parameters()}
    return sum(p.numel() for p in seen.values())


def _linear_from_gpt2_conv1d(conv: nn.Module, start: int, stop: int) -> nn.Linear:
    """The columns [start, stop) of a GPT-2 ``Conv1D`` (x @ W + b, W (in, out)) as a Linear."""
    weight, bias = conv.weight[:, start:stop], conv.bias[start:stop]
    linear = nn.Linear(weight.shape[0], stop - start, device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        linear.weight.copy_(weight.T)
        linear.bias.copy_(bias)
    return linear


@dataclass
class _Site:
    """Where one layer's self-attention sits, and what to keep from it."""

    parent: nn.Module
    attribute: str
    value: (
        Callable[[], nn.Module] | None
    )  # makes (or returns) the V projection, hidden -> value heads
    value_heads: int
    output: nn.Module | None  # O projection inside the attention module, if there is one
    outside_output: tuple[nn.Module, str] | None = None  # (parent, name) of an O outside it
    head_repeat: int = 1
    dropout: nn.Module | None = None

    @property
    def old(self) -> nn.Module:
        return getattr(self.parent, self.attribute)


def _sites(model: nn.Module) -> tuple[str, bool, list[_Site]]:
    """(attribute path of the layer list, causal, one site per layer)."""
    config = model.config
    base = model.base_model
    kind = config.model_type
    if kind == "gpt2":
        return "h", True, [_gpt2_site(block) for block in base.h]
    if kind == "llama":
        return "layers", True, [_llama_site(block, config) for block in base.layers]
    if kind == "bert":
        return "encoder.layer", bool(config.is_decoder), [_bert_site(b) for b in base.encoder.layer]
    raise ConfigError(
        f"replace_attention supports model_type {', '.join(SUPPORTED)} "
        f"(BERT, GPT-2, Llama classes of transformers); got {kind!r} ({type(model).__name__})"
    )


def is_causal(model: nn.Module) -> bool:
    """Whether a supported model's self-attention is causal (its replacement then is too)."""
    return _sites(model)[1]


def _gpt2_site(block: nn.Module) -> _Site:
    attn = block.attn
    if isinstance(attn, MixerAttention):
        return _Site(block, "attn", None, 0, None)
    D = attn.embed_dim  # c_attn packs [Q | K | V] along its output columns
    value = partial(_linear_from_gpt2_conv1d, attn.c_attn, 2 * D, 3 * D)
    return _Site(block, "attn", value, attn.num_heads, attn.c_proj, dropout=attn.resid_dropout)


def _llama_site(block: nn.Module, config: Any) -> _Site:
    attn = block.self_attn
    if isinstance(attn, MixerAttention):
        return _Site(block, "self_attn", None, 0, None)
    value = partial(getattr, attn, "v_proj")
    heads, repeat = config.num_key_value_heads, attn.num_key_value_groups
    return _Site(block, "self_attn", value, heads, attn.o_proj, head_repeat=repeat)


def _bert_site(block: nn.Module) -> _Site:
    attention = block.attention  # BertAttention: self (Q, K, V, softmax) + output (O, LN)
    attn = attention.self
    if isinstance(attn, MixerAttention):
        return _Site(attention, "self", None, 0, None)
    value = partial(getattr, attn, "value")
    outside = (attention.output, "dense")
    return _Site(attention, "self", value, attn.num_attention_heads, None, outside)


def _padding_mask(model: nn.Module) -> PaddingMask:
    base = model.base_model
    found = getattr(base, "_globalconv_padding", None)
    if found is None:
        found = PaddingMask()
        base.register_forward_pre_hook(found.capture, with_kwargs=True)
        base.register_forward_hook(found.clear, always_call=True)
        base._globalconv_padding = found
    return found


def replace_attention(
    model: nn.Module,
    mixer: str = "global_conv",
    layers: list[int] | None = None,
    *,
    projections: Projections = "keep",
    max_len: int | None = None,
    **mixer_options: Any,
) -> ReplacementReport:
    """Replace the self-attention of ``layers`` (all by default) of a BERT, GPT-2 or Llama
    model of ``transformers``, in place, with the mixer ``mixer`` built with ``mixer_options``.

    ``max_len``: the mixer's maximum length (default: the model's max_position_embeddings).
    Returns a report of what was replaced; ``model.config`` records the call for loading.
    """
    if projections not in ("keep", "drop"):
        raise ConfigError(f"projections must be 'keep' or 'drop', got {projections!r}")
    if not hasattr(model, "config") or not hasattr(model, "base_model"):
        raise ConfigError(
            f"replace_attention takes a transformers PreTrainedModel, got {type(model).__name__}"
        )
    prefix, causal, sites = _sites(model)
    config = model.config
    chosen = list(range(len(sites))) if layers is None else sorted(set(layers))
    bad = [i for i in chosen if not 0 <= i < len(sites)]
    if bad:
        raise ConfigError(f"layers {bad} out of range: the model has layers 0..{len(sites) - 1}")
    already = [i for i in chosen if isinstance(sites[i].old, MixerAttention)]
    if already:
        raise ConfigError(f"layers {already} are already replaced")
    if max_len is None:
        max_len = getattr(config, "max_position_embeddings", None)
        if max_len is None:
            raise ConfigError("the model's config has no max_position_embeddings: pass max_len=")
    padding = _padding_mask(model)
    base_name = model.base_model_prefix if model.base_model is not model else ""
    report = ReplacementReport()
    for i in chosen:
        site = sites[i]
        old = site.old
        reference = next(old.parameters())
        keep = projections == "keep"
        value = site.value() if keep else None
        width = value.out_features * site.head_repeat if keep else config.hidden_size
        new_mixer = mixers.build(
            mixer, d_model=width, max_len=max_len, causal=causal, **mixer_options
        )
        before = [old]
        if site.outside_output is not None and not keep:
            parent, name = site.outside_output
            before.append(getattr(parent, name))
            setattr(parent, name, nn.Identity())
        new = MixerAttention(
            new_mixer,
            padding,
            value=value,
            output=site.output if keep else None,
            value_heads=site.value_heads,
            head_repeat=site.head_repeat if keep else 1,
            dropout=site.dropout,
        ).to(device=reference.device, dtype=reference.dtype)
        setattr(site.parent, site.attribute, new)
        path = ".".join(p for p in (base_name, prefix, str(i), _attribute_path(site)) if p)
        report.append(
            Replacement(i, path, type(old).__name__, mixer, _params(*before), _params(new))
        )
    spec = dict(
        mixer=mixer,
        layers=chosen,
        projections=projections,
        max_len=max_len,
        mixer_options=mixer_options,
    )
    setattr(config, CONFIG_KEY, [*(getattr(config, CONFIG_KEY, None) or []), spec])
    config.use_cache = False
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.use_cache = False
    return report


def _attribute_path(site: _Site) -> str:
    return "attention.self" if site.attribute == "self" else site.attribute
