"""Our ``Transformer`` in the Hub format, through ``huggingface_hub``'s ``PyTorchModelHubMixin``.

``model.save_pretrained(directory)`` writes ``config.json`` (the constructor's arguments: the
``ModelConfig`` as a mapping under ``cfg``, then ``max_len``, ``num_outputs``, ``head``,
``causal``, ``vocab_size``, ``input_dim``), ``model.safetensors`` and a model card;
``Transformer.from_pretrained(directory_or_repo_id)`` builds the model from the config and
loads the weights strictly (a missing or unexpected tensor is an error). A local directory is
read as is; a repository id is downloaded by ``huggingface_hub`` only when you ask for one, and
``push_to_hub`` works as for any mixin model.

The mixin records constructor arguments when a model is created, so it sits on a subclass,
``HubTransformer``, that only this module (and so only ``huggingface_hub`` users) imports; a
plain ``Transformer`` is saved through a ``HubTransformer`` holding the same weights.
"""

from __future__ import annotations

from typing import Any

from safetensors.torch import load_model

try:
    from huggingface_hub import PyTorchModelHubMixin
except ImportError:
    raise ImportError(
        "the Hub format needs huggingface_hub: pip install 'globalconv[hf]'"
    ) from None

from globalconv.config import ModelConfig
from globalconv.core.io import MissingRunFileError
from globalconv.models.transformer import Transformer


class HubTransformer(
    PyTorchModelHubMixin,
    Transformer,
    library_name="globalconv",
    tags=["globalconv", "token-mixer"],
    coders={ModelConfig: (lambda cfg: cfg.model_dump(mode="json"), ModelConfig.model_validate)},
):
    """A ``Transformer`` that records its constructor's arguments for config.json (``cfg`` a
    ``ModelConfig`` or its mapping)."""

    def __init__(
        self,
        cfg: ModelConfig | dict[str, Any],
        *,
        max_len: int,
        num_outputs: int,
        head: str = "sequence",
        causal: bool = False,
        vocab_size: int | None = None,
        input_dim: int | None = None,
    ) -> None:
        super().__init__(
            ModelConfig.model_validate(cfg),
            max_len=max_len,
            num_outputs=num_outputs,
            head=head,
            causal=causal,
            vocab_size=vocab_size,
            input_dim=input_dim,
        )

    @classmethod
    def _from_pretrained(
        cls,
        *,
        model_id: str,
        revision: str | None,
        cache_dir: Any,
        force_download: bool,
        local_files_only: bool,
        token: Any,
        map_location: str = "cpu",
        strict: bool = True,
        **model_kwargs: Any,
    ) -> HubTransformer:
        from pathlib import Path

        from huggingface_hub import hf_hub_download

        model = cls(**model_kwargs)
        path = Path(model_id) / "model.safetensors"
        if not Path(model_id).is_dir():
            path = hf_hub_download(
                repo_id=model_id,
                filename="model.safetensors",
                revision=revision,
                cache_dir=cache_dir,
                force_download=force_download,
                token=token,
                local_files_only=local_files_only,
            )
        elif not path.is_file():
            raise MissingRunFileError(f"{model_id} has no model.safetensors")
        load_model(model, str(path), strict=strict, device=map_location)
        return model.eval()


def as_hub_model(model: Transformer) -> HubTransformer:
    """The model itself if it is a ``HubTransformer``, else one with the same weights."""
    if isinstance(model, HubTransformer):
        return model
    hub = HubTransformer(
        model.cfg.model_dump(mode="json"),
        max_len=model.max_len,
        num_outputs=model.head.out_features,
        head=model.head_kind,
        causal=model.causal,
        vocab_size=model.vocab_size,
        input_dim=model.input_dim,
    )
    hub.load_state_dict(model.state_dict())
    return hub.train(model.training)
