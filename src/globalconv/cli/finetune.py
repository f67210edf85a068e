"""``globalconv finetune MODEL_DIR``: swap a ``transformers`` model's attention for a mixer and
fine-tune it on a task of our registry, optionally frozen but for the new mixers and distilled
from the original model, reporting the loss before and after.

The loss is ``task_weight * CE + kl * T^2 KL(teacher_T || student_T) + mse * MSE(hidden)``:
cross-entropy on the task's scored targets; the KL divergence of the student's from the
teacher's temperature-T softmax at the same scored positions (sequences for classification
tasks); the mean squared difference of every layer's hidden states at real tokens, averaged
over layers. The teacher is the model as loaded (before the swap), or ``--teacher DIR``. This
is the recipe of attention-conversion work (logit and hidden-state matching), with our mixers.

Data: any registered task with token inputs (``text`` for byte-level language modelling,
``files`` for your own arrays in an .npz, ``hf`` for a Hugging Face dataset); a causal task
needs a causal model (a bidirectional one would see its targets). Batches are the trainer's
(the batch at step s depends on the seed and s); evaluation uses the first ``eval_examples`` of
the validation split (the test split when there is none).
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path
from typing import Any

from globalconv.config import apply_overrides
from globalconv.core.errors import ConfigError

EXAMPLES = """examples:
  globalconv finetune runs/tiny-gpt2 -p seq_len=128 --freeze --distil kl --out runs/ft
  globalconv finetune runs/tiny-gpt2 --mixer none --task text --steps 400 --out runs/base
  globalconv finetune runs/tiny-gpt2 --option kernel=implicit --distil kl,mse=0.5 --out runs/ft2
  globalconv finetune my-bert --task files -p path=data.npz --projections drop --out runs/bert

MODEL_DIR is a directory written by save_pretrained (swapped by globalconv or not). Writes
OUT/model (save_pretrained; load it with globalconv.hf.from_pretrained) and OUT/finetune.json.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "finetune",
        help="swap a transformers model's attention for a mixer and fine-tune it on a task",
        description=__doc__,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", metavar="MODEL_DIR", help="a save_pretrained directory")
    p.add_argument("--task", default="text", help="a registered task (default text)")
    p.add_argument(
        "-p", "--param", action="append", default=[], metavar="KEY=VALUE", help="task parameter"
    )
    p.add_argument(
        "--mixer", default="global_conv", help="the mixer to swap in; 'none' to keep attention"
    )
    p.add_argument(
        "--option", action="append", default=[], metavar="KEY=VALUE", help="mixer option"
    )
    p.add_argument("--layers", help="comma-separated layer indices (default: all)")
    p.add_argument(
        "--projections",
        choices=["keep", "drop"],
        default="keep",
        help="keep the value/output projections around the mixer (default) or drop them",
    )
    p.add_argument("--max-len", type=int, help="the mixer's max length (default: the model's)")
    p.add_argument("--freeze", action="store_true", help="train only the new mixers")
    p.add_argument("--distil", help="distillation terms and weights: kl, mse, kl=1,mse=0.1")
    p.add_argument("--teacher", help="save_pretrained directory of the teacher (default: MODEL)")
    p.add_argument("--temperature", type=float, default=1.0, help="softmax temperature for kl")
    p.add_argument("--task-weight", type=float, default=1.0, help="weight of the task loss")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--eval-examples", type=int, default=256, help="held-out examples scored")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--overwrite", action="store_true", help="replace a result already in --out")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from globalconv import tasks
    from globalconv.hf.finetune import finetune, format_report
    from globalconv.hf.pretrained import load_model
    from globalconv.hf.replace import MixerAttention, replace_attention

    out = Path(args.out)
    if (out / "finetune.json").exists() and not args.overwrite:
        raise ConfigError(f"{out} already holds a fine-tuned model; pass --overwrite")
    distil = _distil(args.distil)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quiet:
        from transformers.utils import logging

        logging.disable_progress_bar()
    task = tasks.build(args.task, _options(args.param))
    model = load_model(args.model)
    teacher = load_model(args.teacher) if args.teacher else None
    report = None
    if args.mixer != "none":
        if teacher is None and distil:
            teacher = copy.deepcopy(model)
        report = replace_attention(
            model,
            args.mixer,
            _layers(args.layers),
            projections=args.projections,
            max_len=args.max_len,
            **_options(args.option),
        )
        print(report)
    elif args.freeze and not any(isinstance(m, MixerAttention) for m in model.modules()):
        raise ConfigError("--freeze keeps the new mixers trainable: swap some (--mixer)")
    result = finetune(
        model,
        task,
        teacher=teacher,
        steps=args.steps,
        lr=args.lr,
        batch_size=args.batch_size,
        freeze=args.freeze,
        distil=distil,
        temperature=args.temperature,
        task_weight=args.task_weight,
        eval_examples=args.eval_examples,
        seed=args.seed,
        progress=not args.quiet,
    )
    model.save_pretrained(out / "model")
    result["replaced"] = report.as_dicts() if report is not None else []
    result["args"] = {k: v for k, v in vars(args).items() if k != "func"}
    (out / "finetune.json").write_text(json.dumps(result, indent=2) + "\n")
    print(format_report(result))
    print(
        f"{result['trainable_params']:,} of {result['params']:,} parameters trained, "
        f"{result['steps']} steps in {result['train_seconds']:.1f} s; model: {out / 'model'}"
    )
    return 0


def _options(items: list[str]) -> dict[str, Any]:
    return apply_overrides({}, items)


def _distil(text: str | None) -> dict[str, float]:
    """'kl', 'kl,mse' or 'kl=1,mse=0.1' -> {term: weight}."""
    from globalconv.hf.finetune import DISTIL_TERMS

    out: dict[str, float] = {}
    for item in filter(None, (t.strip() for t in (text or "").split(","))):
        name, _, weight = item.partition("=")
        if name not in DISTIL_TERMS:
            raise ConfigError(f"--distil: unknown term {name!r}; choose from {DISTIL_TERMS}")
        try:
            out[name] = float(weight) if weight else 1.0
        except ValueError:
            raise ConfigError(f"--distil: weight of {name!r} must be a number") from None
    return out


def _layers(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise ConfigError(f"--layers takes comma-separated integers, got {text!r}") from None
