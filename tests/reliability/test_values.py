"""Values that should be refused are refused, with a message naming the key (issue class 1)."""

import typing

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from globalconv import cli, kernels, mixers
from globalconv import config as C
from globalconv.registry import _adapter


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.mixer_options.skip=maybe", "option skip: Input should be a valid boolean"),
        ("train.steps=true", "train.steps: Input should be a valid integer"),
        ("model.mixer_options.max_len=16", "has no option max_len; allowed"),
        ("train.betas=[2,3]", "train.betas: each beta must be in"),
        ("train.lr=.inf", "train.lr: Input should be a finite number"),
        ("train.lr=.nan", "train.lr: Input should be a finite number"),
        ("model.dropout=yes", "model.dropout: Input should be a valid number"),
        ("train.compile=1", "train.compile: Input should be a valid boolean"),
        ("model.mixer_options.kernel_options.squash=true", "kernel 'explicit' option squash"),
        ("model.mixer_options.kernel_options.nope=1", "kernel 'explicit' has no option nope"),
        ("task.name=7", "task.name: Input should be a valid string"),
        ("match.reference_options.heads=x", "mixer 'attention' option heads"),
        ("model.layers=[{mixer: attention, heads: abc}]", "mixer 'attention' option heads"),
    ],
)
def test_mistyped_values_are_refused_naming_the_key(override, message):
    with pytest.raises(C.ConfigError, match=message):
        C.load(None, [override])


def test_heads_of_the_wrong_type_names_the_option():
    with pytest.raises(C.ConfigError, match="mixer 'attention' option heads"):
        C.load(None, ["model.mixer=attention", "model.mixer_options.heads=abc"])


def test_numbers_in_exponent_form_are_numbers(tmp_path):
    (tmp_path / "c.yaml").write_text("train:\n  lr: 3e-4\n  betas: [0.9, 0.99]\n")
    cfg = C.load(tmp_path / "c.yaml", ["train.eps=1e-6"])
    assert (cfg.train.lr, cfg.train.eps, cfg.train.betas) == (3e-4, 1e-6, (0.9, 0.99))


def _options_of_every_registered_thing():
    for name in mixers.available():
        for option in mixers.options(name):
            yield "mixer", name, option
    for name in kernels.available():
        for option in kernels.options(name):
            yield "kernel", name, option


OPTIONS = list(_options_of_every_registered_thing())


@pytest.mark.parametrize("kind, name, option", OPTIONS, ids=lambda v: str(v))
def test_every_option_of_every_mixer_and_kernel_is_typed(kind, name, option):
    check = mixers.check_options if kind == "mixer" else kernels.check_options
    with pytest.raises(ValueError, match=f"option {option}: "):
        check(name, {option: object()})  # no annotation admits an arbitrary object


json_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.lists(st.integers(-3, 3), max_size=3),
)


def _leaf_keys(model: type[BaseModel], prefix: str = "") -> list[tuple[str, typing.Any]]:
    keys = []
    for field_name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys += _leaf_keys(annotation, f"{prefix}{field_name}.")
        else:
            keys.append((f"{prefix}{field_name}", annotation))
    return keys


LEAVES = [(k, a) for k, a in _leaf_keys(C.RunConfig) if not k.endswith("options")]


@settings(max_examples=300, deadline=None)
@given(leaf=st.sampled_from(LEAVES), value=json_values)
def test_any_value_at_any_key_is_stored_as_its_type_or_refused_naming_the_key(leaf, value):
    key, annotation = leaf
    data = C.apply_overrides({}, [])
    node = data
    *sections, last = key.split(".")
    for part in sections:
        node = node.setdefault(part, {})
    node[last] = value
    try:
        cfg = C.parse(data)
    except C.ConfigError as err:
        assert key in str(err) or sections[0] in str(err), str(err)
        return
    stored = cfg
    for part in key.split("."):
        stored = getattr(stored, part)
    # what was accepted is strictly of the annotated type: no "maybe" as a bool, no bool as a
    # number, no NaN or infinity
    _adapter(annotation).validate_python(stored)
    if isinstance(value, bool) or isinstance(stored, bool):
        assert type(value) is type(stored) or (value is None and stored is None)


@settings(max_examples=200, deadline=None)
@given(option=st.sampled_from([o for o in OPTIONS if o[0] == "mixer"]), value=json_values)
def test_any_mixer_option_value_builds_or_is_refused_with_a_value_error(option, value):
    _, name, key = option
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 64:
        value = value % 64  # sizes are bounded elsewhere; here the types are under test
    cls = mixers.get(name)
    try:
        mixers.build(
            name, d_model=8, max_len=8, causal=not cls.supports_bidirectional, **{key: value}
        )
    except ValueError:
        pass  # every refusal is a ValueError (the CLI's exit code 2), never a TypeError


@pytest.mark.parametrize(
    "argv",
    [
        ["compare", "--steps", "0"],
        ["compare", "--jobs", "0"],
        ["sweep", "--jobs", "0"],
        ["eval", "run", "--batch-size", "0"],
        ["eval", "run", "--length", "-3"],
        ["bench", "op", "--repeats", "0"],
        ["bench", "mixers", "--max-seconds", "nan"],
        ["report", "runs", "--width", "x"],
    ],
)
def test_counts_on_the_command_line_refuse_zero_and_junk(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.build_parser().parse_args(argv)
    assert exit_info.value.code == 2
    assert "expected" in capsys.readouterr().err
