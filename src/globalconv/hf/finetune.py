"""Swapping a ``transformers`` model's attention for a mixer and fine-tuning it on a task of our
registry (``globalconv finetune``), optionally frozen but for the new mixers and distilled from
the original model (``Objective``: logit and hidden-state matching, the recipe of
attention-conversion work), with the loss measured before and after.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from globalconv import tasks
from globalconv.config import ConfigError
from globalconv.core.errors import DivergedError
from globalconv.core.tables import format_table
from globalconv.hf.replace import MixerAttention, is_causal
from globalconv.tasks import IGNORE_INDEX, Split, TaskSpec

DISTIL_TERMS = ("kl", "mse")


def check_task(model: nn.Module, spec: TaskSpec, task_name: str) -> None:
    """A clear error if the model cannot be trained on the task as it is."""
    if spec.architecture != "encoder":
        raise ConfigError(f"task {task_name!r} is {spec.architecture}; finetune takes one stack")
    if spec.vocab_size is None:
        raise ConfigError(
            f"task {task_name!r} has real-valued inputs; a transformers model takes token ids"
        )
    vocab = model.config.vocab_size
    if spec.vocab_size > vocab:
        raise ConfigError(
            f"task {task_name!r} has {spec.vocab_size} token ids, the model's vocabulary "
            f"{vocab}; use a model with vocab_size >= {spec.vocab_size}"
        )
    positions = getattr(model.config, "max_position_embeddings", None)
    if positions is not None and spec.max_len > positions:
        raise ConfigError(
            f"task {task_name!r} has sequences of {spec.max_len} tokens, the model at most "
            f"{positions}; set the task's length lower (e.g. -p seq_len={positions})"
        )
    if spec.causal and not is_causal(model):
        raise ConfigError(
            f"task {task_name!r} predicts next tokens; a bidirectional model would see its "
            "targets: use a causal model (GPT-2, Llama, BERT with is_decoder)"
        )


def model_inputs(batch: dict[str, Tensor | None]) -> dict[str, Tensor]:
    """Our split's (inputs, lengths) as transformers' (input_ids, attention_mask)."""
    ids = batch["inputs"]
    lengths = batch.get("lengths")
    if lengths is None:
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    mask = torch.arange(ids.shape[1])[None, :] < lengths[:, None]
    return {"input_ids": ids, "attention_mask": mask.long()}


def _logits(output: Any, spec: TaskSpec, task_name: str) -> Tensor:
    logits = output.logits
    want = 3 if spec.head == "token" else 2
    if logits.dim() != want or logits.shape[-1] < spec.num_outputs:
        kind = (
            "per-token logits (a ...ForCausalLM, ...ForMaskedLM or ...ForTokenClassification)"
            if spec.head == "token"
            else "one logit vector per sequence (a ...ForSequenceClassification)"
        )
        raise ConfigError(
            f"task {task_name!r} needs {kind} with >= {spec.num_outputs} outputs; the model "
            f"gives logits of shape {tuple(logits.shape)}"
        )
    return logits.float()


class Objective:
    """Task cross-entropy plus the distillation terms, and the measurements before/after: the loss
    is ``task_weight * CE + kl * T^2 KL(teacher_T || student_T) + mse * MSE(hidden)``."""

    def __init__(
        self,
        spec: TaskSpec,
        task_name: str,
        *,
        teacher: nn.Module | None,
        distil: dict[str, float],
        temperature: float,
        task_weight: float,
    ) -> None:
        unknown = sorted(set(distil) - set(DISTIL_TERMS))
        if unknown:
            raise ConfigError(f"unknown distillation terms {unknown}; choose from {DISTIL_TERMS}")
        if any(w < 0 for w in distil.values()) or task_weight < 0:
            raise ConfigError("loss weights must be >= 0")
        if distil and teacher is None:
            raise ConfigError("distillation needs a teacher (the model before the swap)")
        if temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {temperature}")
        self.spec, self.task_name = spec, task_name
        self.teacher, self.distil = teacher, distil
        self.temperature, self.task_weight = temperature, task_weight

    def terms(self, model: nn.Module, batch: dict, targets: Tensor) -> dict[str, Tensor]:
        """Mean task cross-entropy, KL to the teacher and hidden-state MSE for one batch."""
        inputs = model_inputs(batch)
        hidden = "mse" in self.distil
        out = model(**inputs, output_hidden_states=hidden)
        logits = _logits(out, self.spec, self.task_name)  # (B, L, V) or (B, C)
        scored = targets != IGNORE_INDEX  # (B, L) or (B,)
        result = {"loss": F.cross_entropy(logits[scored], targets[scored])}
        if self.teacher is None:
            return result
        with torch.no_grad():
            ref = self.teacher(**inputs, output_hidden_states=hidden)
        T = self.temperature
        student = F.log_softmax(logits[scored] / T, -1)
        teacher = F.log_softmax(_logits(ref, self.spec, self.task_name)[scored] / T, -1)
        kl = F.kl_div(student, teacher, log_target=True, reduction="batchmean")
        result["kl"] = kl * T * T
        if hidden:
            real = inputs["attention_mask"].bool()  # (B, L)
            pairs = list(zip(out.hidden_states[1:], ref.hidden_states[1:], strict=True))
            mse = sum(F.mse_loss(s[real].float(), t[real].float()) for s, t in pairs)
            result["mse"] = mse / len(pairs)
        return result

    def total(self, terms: dict[str, Tensor]) -> Tensor:
        loss = self.task_weight * terms["loss"]
        for name, weight in self.distil.items():
            loss = loss + weight * terms[name]
        return loss

    @torch.no_grad()
    def measure(self, model: nn.Module, split: Split, batch_size: int) -> dict[str, float]:
        """Mean of each term over the split (weighted by batch size), model in eval mode."""
        was_training = model.training
        model.eval()
        sums: dict[str, float] = {}
        for start in range(0, len(split), batch_size):
            index = torch.arange(start, min(start + batch_size, len(split)))
            batch, targets = split.batch(index)
            for name, value in self.terms(model, batch, targets).items():
                sums[name] = sums.get(name, 0.0) + float(value) * len(index)
        model.train(was_training)
        means = {name: total / len(split) for name, total in sums.items()}
        if self.spec.metric == "bits_per_token":
            means["bits_per_token"] = means["loss"] / math.log(2)
        return means


def freeze_all_but_mixers(model: nn.Module) -> int:
    """Leave only the replaced layers' mixers trainable; returns their parameter count."""
    swapped = [m for m in model.modules() if isinstance(m, MixerAttention)]
    if not swapped:
        raise ConfigError("nothing to freeze around: the model has no replaced layers")
    model.requires_grad_(False)
    for layer in swapped:
        layer.mixer.requires_grad_(True)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def finetune(
    model: nn.Module,
    task: tasks.Task,
    *,
    teacher: nn.Module | None = None,
    steps: int = 200,
    lr: float = 1e-3,
    batch_size: int = 16,
    freeze: bool = False,
    distil: dict[str, float] | None = None,
    temperature: float = 1.0,
    task_weight: float = 1.0,
    weight_decay: float = 0.0,
    eval_examples: int = 256,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """Fine-tune ``model`` in place on ``task``; returns the measurements before and after."""
    from globalconv.train.data import BatchOrder
    from globalconv.train.optim import parameter_groups

    if steps < 0 or batch_size < 1 or eval_examples < 1:
        raise ConfigError("steps must be >= 0, batch_size and eval_examples >= 1")
    spec = task.spec
    check_task(model, spec, task.name)
    objective = Objective(
        spec,
        task.name,
        teacher=None if teacher is None else teacher.eval(),
        distil=dict(distil or {}),
        temperature=temperature,
        task_weight=task_weight,
    )
    splits = task.splits()
    held_out = splits.get("valid") or splits["test"]
    held_out = _head(held_out, eval_examples)
    if freeze:
        freeze_all_but_mixers(model)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    torch.manual_seed(seed)
    before = objective.measure(model, held_out, batch_size)
    teacher_metrics = None
    if teacher is not None:
        plain = Objective(spec, task.name, teacher=None, distil={}, temperature=1.0, task_weight=1)
        teacher_metrics = plain.measure(teacher, held_out, batch_size)
    optimizer = torch.optim.AdamW(parameter_groups(model, weight_decay, lr=lr), lr=lr)
    order = BatchOrder(len(splits["train"]), batch_size, seed)
    model.train()
    losses: list[float] = []
    start = time.perf_counter()
    bar = _progress(steps, progress)
    for step in range(steps):
        batch, targets = splits["train"].batch(order.indices(step))
        terms = objective.terms(model, batch, targets)
        loss = objective.total(terms)
        if not torch.isfinite(loss):
            raise DivergedError(f"the loss diverged at step {step}; lower --lr")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        optimizer.step()
        losses.append(loss.item())
        if bar is not None:
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
            bar.update()
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - start
    after = objective.measure(model, held_out, batch_size)
    model.eval()
    return {
        "task": task.name,
        "steps": steps,
        "trainable_params": trainable,
        "params": sum(p.numel() for p in model.parameters()),
        "train_seconds": seconds,
        "first_train_loss": losses[0] if losses else None,
        "last_train_loss": losses[-1] if losses else None,
        "eval_examples": len(held_out),
        "before": before,
        "after": after,
        "teacher": teacher_metrics,
    }


def _head(split: Split, n: int) -> Split:
    index = torch.arange(min(n, len(split)))
    lengths = None if split.lengths is None else split.lengths[index]
    extras = {k: v[index] for k, v in split.extras.items()}
    return Split(split.inputs[index], split.targets[index], lengths, extras)


def _progress(steps: int, show: bool):
    if not show or steps == 0:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=steps, desc="finetune", leave=False)


def format_report(report: dict[str, Any]) -> str:
    """Before/after (and teacher) measurements as a small table."""
    rows = [("before", report["before"]), ("after", report["after"])]
    if report.get("teacher"):
        rows.append(("teacher", report["teacher"]))
    names = [n for n in ("loss", "bits_per_token", "kl", "mse") if n in report["before"]]
    header = ["model", *names]
    body = [[label, *(f"{m[n]:.4f}" if n in m else "-" for n in names)] for label, m in rows]
    return format_table(header, body)


__all__ = ["Objective", "check_task", "finetune", "format_report", "freeze_all_but_mixers"]
