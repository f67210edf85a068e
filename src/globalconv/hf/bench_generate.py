"""``globalconv bench generate``: what generating costs once attention is swapped out.

Our causal mixers keep no cache, so a swapped model's ``generate`` feeds the whole sequence at
every step: n new tokens after a prompt of p cost n forward passes over p..p+n-1 tokens, where
attention with its key-value cache passes one token each step. This times greedy ``generate``
of a GPT-2 built from a config (random weights; the cost does not depend on them) three ways,
interleaved: the original with its cache, the original without (the same recomputation), and
the swapped model; ratios are to the original with its cache.
"""

from __future__ import annotations

import argparse
import copy

import torch

from globalconv.analysis import bench
from globalconv.core.tables import format_table


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


def run(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = measure(
        prompts=args.prompts,
        new_tokens=args.new_tokens,
        d_model=args.d_model,
        layers=args.layers,
        mixer=args.mixer,
        repeats=args.repeats,
    )
    print(
        f"greedy generate of {args.new_tokens} tokens, GPT-2 d={args.d_model}, "
        f"{args.layers} layers, {torch.get_num_threads()} threads; ms per generated token"
    )
    header = ["prompt", "attention+cache", "attention, no cache", args.mixer]
    header += ["no cache / cache", f"{args.mixer} / cache"]
    print(format_table(header, rows))
    return 0


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    p = bench.subcommands(subparsers).add_parser(
        "generate",
        help="generation cost of a swapped GPT-2 (no cache: recomputes the prefix)",
        description=__doc__,
        epilog="examples:\n  globalconv bench generate\n"
        "  globalconv bench generate --prompts 64,512 --new-tokens 64 --d-model 256",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--prompts", type=bench.int_list, default=[16, 128, 512])
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--mixer", default="global_conv")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.set_defaults(func=run)
