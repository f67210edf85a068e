"""The shared helpers of globalconv.core: mean and spread, dotted keys, pydantic's report, the
commands' tables."""

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from globalconv.core.errors import ConfigError
from globalconv.core.settings import one_line, problems, set_dotted
from globalconv.core.stats import mean_std
from globalconv.core.tables import format_table


def test_mean_and_sample_std():
    mean, std = mean_std([0.5, 0.7, 0.9])
    assert mean == pytest.approx(0.7) and std == pytest.approx(0.2)
    assert mean_std([0.4]) == (0.4, None)


def test_tables_align_columns_and_print_missing_cells_as_a_dash():
    table = format_table(["mixer", "ms"], [["attention", 1.5], ["fnet", None]], left={0})
    assert table.splitlines() == [
        "mixer       ms",
        "---------  ---",
        "attention  1.5",
        "fnet         -",
    ]
    assert format_table(["a", "bb"], []) == "a  bb\n-  --"  # a header alone


def test_dotted_keys_make_sections_and_refuse_to_descend_into_a_value():
    data = {"model": {"d_model": 64}}
    set_dotted(data, "model.mixer_options.heads", 8, context="override 'x'")
    set_dotted(data, "name", "run", context="override 'y'")
    assert data == {"model": {"d_model": 64, "mixer_options": {"heads": 8}}, "name": "run"}
    with pytest.raises(ConfigError, match=r"^override 'z': 'd_model' is a value, not a section$"):
        set_dotted(data, "model.d_model.x", 1, context="override 'z'")


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    size: int = 1

    @field_validator("size")
    @classmethod
    def _positive(cls, size: int) -> int:
        if size < 1:
            raise ValueError("must be >= 1")
        return size


def test_pydantic_problems_phrased_by_the_caller_on_one_line():
    with pytest.raises(ValidationError) as caught:
        _Settings.model_validate({"size": 0, "colour": "red"})
    found = problems(caught.value)
    seen = [(p.key, p.unknown, p.got) for p in found]
    assert seen == [("size", False, 0), ("colour", True, "red")]
    assert found[0].message == "must be >= 1"  # without pydantic's "Value error, "
    line = one_line(caught.value, lambda p: f"{p.key}: {'unknown' if p.unknown else p.message}")
    assert line == "size: must be >= 1; colour: unknown"
