"""The measurement of ``globalconv bench generate``: greedy ``generate`` of a GPT-2 with its
key-value cache, without it, and with its attention swapped for a mixer (which keeps no cache, so
every step feeds the whole sequence); see ``globalconv bench generate --help``.
"""

from __future__ import annotations

import copy

import torch

from globalconv.analysis import bench


def measure(
    *,
    prompts: list[int],
    new_tokens: int,
    d_model: int,
    layers: int,
    mixer: str,
    repeats: int,
) -> list[list[str | None]]:
    """One table row per prompt length: ms per generated token of each model, and ratios."""
    import transformers

    from globalconv.hf.replace import replace_attention

    transformers.utils.logging.set_verbosity_error()
    torch.manual_seed(0)
    positions = max(prompts) + new_tokens
    config = transformers.GPT2Config(
        vocab_size=256, n_positions=positions, n_embd=d_model, n_layer=layers, n_head=4
    )
    original = transformers.GPT2LMHeadModel(config).eval()
    swapped = copy.deepcopy(original)
    replace_attention(swapped, mixer)

    def generate(model, prompt, cache):
        def call():
            with torch.no_grad():
                model.generate(
                    prompt,
                    attention_mask=torch.ones_like(prompt),
                    max_new_tokens=new_tokens,
                    min_new_tokens=new_tokens,
                    do_sample=False,
                    use_cache=cache,
                    pad_token_id=0,
                )

        return call

    rows = []
    for p in prompts:
        prompt = torch.randint(0, 256, (1, p))
        times = bench.time_interleaved(
            {
                "cache": generate(original, prompt, True),
                "no cache": generate(original, prompt, False),
                "swapped": generate(swapped, prompt, False),
            },
            repeats=repeats,
            warmup=1,
        )
        per_token = {name: t / new_tokens for name, t in times.items()}
        rows.append(
            [
                p,
                bench.ms(per_token["cache"]),
                bench.ms(per_token["no cache"]),
                bench.ms(per_token["swapped"]),
                bench.ratio(per_token["no cache"], per_token["cache"]),
                bench.ratio(per_token["swapped"], per_token["cache"]),
            ]
        )
    return rows


__all__ = ["measure"]
