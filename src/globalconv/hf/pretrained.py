"""Load a ``transformers`` model saved after ``replace_attention``: the architecture from its
config.json, the recorded replacements replayed, then the weights from safetensors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from globalconv.core.io import MissingRunFileError, RunFileError
from globalconv.hf.replace import CONFIG_KEY, replace_attention


def require_transformers():
    """The ``transformers`` module, or an ImportError saying how to install it."""
    try:
        import transformers
    except ImportError:
        raise ImportError(
            "globalconv.hf needs transformers: pip install 'globalconv[hf]'"
        ) from None
    return transformers


def load_model(directory: str | Path, **from_pretrained_kwargs: Any) -> nn.Module:
    """A model saved with ``save_pretrained`` from a local directory, swapped or not (nothing is
    downloaded). The class is the config's first ``architectures`` entry."""
    transformers = require_transformers()

    directory = Path(directory)
    if not (directory / "config.json").is_file():
        raise MissingRunFileError(
            f"{directory} has no config.json: give a directory written by save_pretrained"
        )
    config = transformers.AutoConfig.from_pretrained(directory, local_files_only=True)
    architectures = getattr(config, "architectures", None) or []
    cls = getattr(transformers, architectures[0], None) if architectures else None
    if cls is None:
        raise RunFileError(
            f"{directory}/config.json names no transformers class in 'architectures' "
            f"({architectures}); load the model yourself and call replace_attention"
        )
    replacements = getattr(config, CONFIG_KEY, None)
    if not replacements:
        return cls.from_pretrained(directory, local_files_only=True, **from_pretrained_kwargs)
    return from_pretrained(directory, model_class=cls)


def from_pretrained(directory: str | Path, model_class: type | None = None) -> nn.Module:
    """Rebuild a swapped model saved with ``save_pretrained`` and load its weights."""
    from safetensors.torch import load_file

    transformers = require_transformers()

    directory = Path(directory)
    config = transformers.AutoConfig.from_pretrained(directory, local_files_only=True)
    replacements = getattr(config, CONFIG_KEY, None)
    if not replacements:
        raise RunFileError(
            f"{directory} holds no model swapped by globalconv ({CONFIG_KEY} missing from "
            "config.json); load it with transformers' from_pretrained"
        )
    if model_class is None:
        model_class = getattr(transformers, (config.architectures or [""])[0], None)
        if model_class is None:
            raise RunFileError(f"{directory}/config.json names no transformers class")
    delattr(config, CONFIG_KEY)  # replayed below, call by call
    model = model_class(config)
    for spec in replacements:
        options = dict(spec.get("mixer_options") or {})
        replace_attention(
            model,
            spec["mixer"],
            spec["layers"],
            projections=spec["projections"],
            max_len=spec["max_len"],
            **options,
        )
    state = _read_weights(directory, load_file)
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = _tied_names(model)
    missing = [name for name in missing if name not in tied]
    if missing or unexpected:
        raise RunFileError(
            f"{directory}: weights do not fit the rebuilt model (missing {missing[:5]}, "
            f"unexpected {unexpected[:5]})"
        )
    model.tie_weights()
    return model.eval()


def _read_weights(directory: Path, load_file) -> dict[str, torch.Tensor]:
    single = directory / "model.safetensors"
    if single.is_file():
        return load_file(str(single))
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        state: dict[str, torch.Tensor] = {}
        for shard in shards:
            state.update(load_file(str(directory / shard)))
        return state
    raise MissingRunFileError(f"{directory} has no model.safetensors (or its index)")


def _tied_names(model: nn.Module) -> set[str]:
    """Names of parameters that share their tensor with another name (save_pretrained writes
    one of them)."""
    by_tensor: dict[int, list[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        by_tensor.setdefault(id(p), []).append(name)
    return {name for names in by_tensor.values() if len(names) > 1 for name in names}
