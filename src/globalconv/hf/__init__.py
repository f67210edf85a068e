"""Hugging Face integration (``pip install 'globalconv[hf]'``).

- ``replace_attention(model, mixer="global_conv", layers=None, **mixer_options)``: swap the
  self-attention of a BERT, GPT-2 or Llama model of ``transformers`` for one of our mixers,
  keeping every other weight (``globalconv.hf.replace`` explains the design);
- ``from_pretrained(directory)``: load a swapped model written by ``save_pretrained``;
- ``globalconv finetune``: fine-tune a swapped model on a task, with frozen weights and
  distillation from the original (``globalconv.hf.finetune``);
- ``globalconv.models.Transformer.save_pretrained`` / ``from_pretrained``: our own models in the
  Hub format (``globalconv.models.hub``).

``transformers`` and ``huggingface_hub`` are imported only when a function needs them.
"""

from globalconv.hf.pretrained import from_pretrained, load_model
from globalconv.hf.replace import (
    SUPPORTED,
    MixerAttention,
    Replacement,
    ReplacementReport,
    replace_attention,
)

__all__ = [
    "SUPPORTED",
    "MixerAttention",
    "Replacement",
    "ReplacementReport",
    "from_pretrained",
    "load_model",
    "replace_attention",
]
