"""Typed experiment configuration: model, task, training and run.

Configs load from YAML or JSON and take dotted overrides (``model.d_model=128``). Unknown keys,
wrong types and impossible combinations raise ``ConfigError`` with a one-line message naming the
key and what is allowed; nothing is ever ``exec``-ed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from globalconv.core.errors import ConfigError
from globalconv.core.settings import Problem, one_line, set_dotted


class Strict(BaseModel):
    # strict: a boolean is not a number and "maybe" is not a boolean; no NaN or infinity
    model_config = ConfigDict(
        extra="forbid", validate_assignment=True, strict=True, allow_inf_nan=False
    )


HYBRID = "hybrid"  # model.mixer of a per-layer layout (model.layers)


def _mixer_registry():
    """The registry that mixer names and options are checked against. Imported when a config
    is validated, not with this module: it loads torch, and a config file is read without it."""
    from globalconv import mixers

    return mixers


def _known_mixer_name(name: str, where: str = "") -> str:
    registry = _mixer_registry()
    if name not in registry.available():
        available = ", ".join(registry.available())
        raise ValueError(f"{where}unknown mixer {name!r}; available: {available}")
    return name


class ModelConfig(Strict):
    mixer: str = "global_conv"
    mixer_options: dict[str, Any] = Field(
        default_factory=dict,
        description="the mixer's options; with layers: {mixer name: options} for its layers",
    )
    layers: list[str | dict[str, Any]] | None = Field(
        None,
        description="hybrid layout, one mixer per layer: names (or 'a,b,c'), or "
        "{mixer: name, option: value} entries; sets mixer=hybrid and n_layers",
    )
    d_model: int = Field(64, ge=1)
    n_layers: int = Field(2, ge=1, le=1024)
    d_ff: int | None = Field(None, ge=1, description="feed-forward width; default 4 * d_model")
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    norm: Literal["post", "pre"] = "post"
    activation: Literal["relu", "gelu"] = "relu"
    positions: Literal["sinusoidal", "learned", "none"] | None = Field(
        None,
        description="default: sinusoidal when any layer's mixer needs positions (attention), "
        "none otherwise",
    )

    @field_validator("mixer")
    @classmethod
    def _known_mixer(cls, name: str) -> str:
        return name if name == HYBRID else _known_mixer_name(name)

    @model_validator(mode="before")
    @classmethod
    def _hybrid_defaults(cls, data: Any) -> Any:
        """A layout given as 'a,b,c' becomes a list; it implies mixer=hybrid and its depth."""
        if not isinstance(data, dict) or data.get("layers") is None:
            return data
        data = dict(data)
        if isinstance(data["layers"], str):
            data["layers"] = [name.strip() for name in data["layers"].split(",") if name.strip()]
        data.setdefault("mixer", HYBRID)
        if isinstance(data["layers"], list) and data["layers"]:
            data.setdefault("n_layers", len(data["layers"]))
        return data

    @model_validator(mode="after")
    def _hybrid_layout(self) -> ModelConfig:
        if self.layers is None:
            if self.mixer == HYBRID:
                raise ValueError("mixer 'hybrid' needs a layout, e.g. layers=global_conv,attention")
            _mixer_registry().check_options(self.mixer, self.mixer_options)
            return self
        if self.mixer != HYBRID:
            raise ValueError(
                f"layers gives one mixer per layer; set mixer to 'hybrid' (or drop it), "
                f"not {self.mixer!r}"
            )
        if not self.layers:
            raise ValueError("layers is empty; name one mixer per layer")
        if self.n_layers != len(self.layers):
            raise ValueError(
                f"n_layers={self.n_layers} but layers names {len(self.layers)} layer(s); "
                f"set n_layers={len(self.layers)} or drop it"
            )
        for entry in self.layers:
            if isinstance(entry, dict) and "mixer" not in entry:
                raise ValueError(f"layer {entry} needs a 'mixer' key naming its mixer")
            _known_mixer_name(entry if isinstance(entry, str) else entry["mixer"], "layers: ")
        used = {name for name, _ in self.layer_mixers()}
        for name, opts in self.mixer_options.items():
            if name not in used or not isinstance(opts, dict):
                raise ValueError(
                    f"with layers, mixer_options maps a mixer used in layers to its options "
                    f"(e.g. mixer_options.attention.heads=8); got key {name!r}"
                )
        for name, opts in self.layer_mixers():
            _mixer_registry().check_options(name, opts)
        return self

    def layer_mixers(self) -> list[tuple[str, dict[str, Any]]]:
        """(mixer name, options) for each layer."""
        if self.layers is None:
            return [(self.mixer, dict(self.mixer_options)) for _ in range(self.n_layers)]
        result = []
        for entry in self.layers:
            own = {"mixer": entry} if isinstance(entry, str) else dict(entry)
            name = own.pop("mixer")
            shared = self.mixer_options.get(name, {})
            result.append((name, {**(shared if isinstance(shared, dict) else {}), **own}))
        return result

    def resolved_d_ff(self) -> int:
        return self.d_ff if self.d_ff is not None else 4 * self.d_model


class TaskConfig(Strict):
    name: str = "mnist1d"
    params: dict[str, Any] = Field(default_factory=dict, description="the task's own parameters")
    valid_fraction: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="share of the training examples held out as a validation split when the "
        "task has none of its own (drawn by task.params.seed; test is never touched)",
    )


class EarlyStoppingConfig(Strict):
    patience: int = Field(
        0, ge=0, description="evaluations without improvement before stopping; 0: never stop"
    )
    metric: Literal["loss", "accuracy", "bits_per_token"] = Field(
        "loss", description="validation metric watched (accuracy is maximised, others minimised)"
    )
    min_delta: float = Field(0.0, ge=0, description="smallest change that counts as improvement")


class TrainConfig(Strict):
    steps: int = Field(1000, ge=1)
    batch_size: int = Field(
        64,
        ge=1,
        le=2**24,
        description="examples per optimiser step, over accumulation and all processes",
    )
    grad_accum: int = Field(1, ge=1, description="micro-batches per optimiser step")
    lr: float = Field(1e-3, gt=0, description="peak learning rate")
    betas: tuple[float, float] = Field((0.9, 0.999), description="AdamW's betas, each in [0, 1)")
    eps: float = Field(1e-8, gt=0)
    weight_decay: float = Field(0.01, ge=0, description="AdamW decay of linear-layer matrices")
    kernel_weight_decay: float = Field(
        0.0, ge=0, description="decay of convolution kernels (parameters named 'kernel')"
    )
    warmup_steps: int = Field(100, ge=0)
    schedule: Literal["cosine", "constant", "inverse_sqrt"] = "cosine"
    min_lr_ratio: float = Field(0.0, ge=0, le=1, description="cosine floor, a fraction of lr")
    grad_clip: float | None = Field(1.0, gt=0, description="max global gradient norm; null: off")
    precision: Literal["fp32", "bf16"] = Field("fp32", description="bf16: autocast (CPU or CUDA)")
    compile: bool = Field(False, description="torch.compile the model for training")
    compile_backend: str = "inductor"
    eval_every: int = Field(
        0, ge=0, description="steps between validation passes; 0: only at the end"
    )
    eval_batch_size: int = Field(256, ge=1, le=2**24)
    early_stopping: EarlyStoppingConfig = Field(default_factory=EarlyStoppingConfig)
    checkpoint_every: int = Field(
        500, ge=0, description="steps between checkpoints; 0: only on interrupt and at the end"
    )
    log_every: int = Field(0, ge=0, description="steps between metric records; 0: steps/200")
    tensorboard: bool = Field(False, description="also log to RUN_DIR/tensorboard")
    seed: int = 0
    device: str = Field("cpu", description="cpu, cuda or cuda:N")
    threads: int | None = Field(None, ge=1, description="torch CPU threads; null: torch's default")

    @field_validator("betas", mode="before")
    @classmethod
    def _betas_from_list(cls, betas: Any) -> Any:
        return tuple(betas) if isinstance(betas, list) else betas  # YAML and JSON give lists

    @field_validator("betas")
    @classmethod
    def _betas_in_range(cls, betas: tuple[float, float]) -> tuple[float, float]:
        if not all(0 <= b < 1 for b in betas):
            raise ValueError("each beta must be in [0, 1), e.g. [0.9, 0.999]")
        return betas

    @field_validator("device")
    @classmethod
    def _known_device(cls, device: str) -> str:
        if not re.fullmatch(r"cpu|cuda(:\d+)?", device):
            raise ValueError(f"unknown device {device!r}; allowed: cpu, cuda, cuda:N")
        return device

    @model_validator(mode="after")
    def _consistent(self) -> TrainConfig:
        if self.batch_size % self.grad_accum:
            raise ValueError(
                f"batch_size={self.batch_size} is not divisible by grad_accum={self.grad_accum}; "
                "choose a grad_accum that divides the batch"
            )
        if self.early_stopping.patience and not self.eval_every:
            raise ValueError("early_stopping.patience needs evaluations: set train.eval_every > 0")
        return self


class MatchConfig(Strict):
    """Size the model to a reference model's parameter count or FLOPs per token."""

    by: Literal["none", "params", "flops"] = "none"
    reference: str = Field("attention", description="the reference model's mixer")
    reference_options: dict[str, Any] = Field(default_factory=dict)
    dimension: Literal["width", "depth"] = Field(
        "width", description="what is resized: width (d_model) or depth (n_layers)"
    )
    tolerance: float = Field(0.05, gt=0, description="largest relative difference accepted")
    reference_d_model: int | None = Field(
        None, ge=1, description="the reference's width; default model.d_model (saved resolved)"
    )
    reference_n_layers: int | None = Field(
        None, ge=1, description="the reference's depth; default model.n_layers (saved resolved)"
    )

    @field_validator("reference")
    @classmethod
    def _known_reference(cls, name: str) -> str:
        return _known_mixer_name(name)

    @model_validator(mode="after")
    def _reference_options(self) -> MatchConfig:
        _mixer_registry().check_options(self.reference, self.reference_options)
        return self


class RunConfig(Strict):
    name: str | None = None
    task: TaskConfig = Field(default_factory=TaskConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    match: MatchConfig = Field(default_factory=MatchConfig)


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads 3e-4 (no dot) as a string; here it is the number every user means."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+$"),
    list("-+0123456789."),
)


def parse_yaml(text: str) -> Any:
    """YAML (or JSON) text as Python values, numbers such as 3e-4 included."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506  (a SafeLoader)


def load_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON config file into a plain dict."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    text = path.read_text()
    try:
        data = json.loads(text) if path.suffix == ".json" else parse_yaml(text)
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        raise ConfigError(
            f"config file {path} is not valid {path.suffix.lstrip('.') or 'YAML'}: {err}"
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file {path} must hold a mapping at the top, got {type(data).__name__}"
        )
    return data


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides (values parsed as YAML) to a nested dict, in place."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(
                f"override {item!r} must look like key.path=value, e.g. model.d_model=128"
            )
        try:
            value = parse_yaml(raw) if raw else ""
        except yaml.YAMLError as err:
            raise ConfigError(f"override {item!r}: value is not valid YAML ({err})") from None
        set_dotted(data, key, value, context=f"override {item!r}")
    return data


def parse(data: dict[str, Any]) -> RunConfig:
    """Validate a dict as a RunConfig, turning pydantic's report into one clear line."""
    try:
        return RunConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(describe(err)) from None


def describe(err: ValidationError) -> str:
    def phrase(problem: Problem) -> str:
        key = problem.key or "config"
        if problem.unknown:
            return f"unknown key {key!r}; allowed here: {', '.join(_fields_at(problem.loc[:-1]))}"
        # a whole section as "input" (cross-field checks) says nothing the message doesn't
        got = "" if isinstance(problem.got, dict) else f" (got {problem.got!r})"
        return f"{key}: {problem.message}{got}"

    return one_line(err, phrase)


def _fields_at(loc: tuple) -> list[str]:
    """Field names of the config section at ``loc`` (a pydantic error location)."""
    model: type[BaseModel] = RunConfig
    for part in loc:
        annotation = model.model_fields[str(part)].annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def load(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Load a config file (or the defaults), apply overrides, validate."""
    data = load_file(path) if path is not None else {}
    return parse(apply_overrides(data, overrides or []))
