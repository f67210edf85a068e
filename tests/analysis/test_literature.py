import re
import typing

import pytest

from globalconv.analysis import flops, literature
from globalconv.analysis.document import Document, Table

# the operators the report must answer for
REQUIRED = ["GFNet", "MLP-Mixer", "FNet", "Synthesizer", "LightConv", "CKConv", "S4", "Long Convs",
            "SGConv", "H3", "Hyena", "Based", "MAD", "2505.15105"]  # fmt: skip


def test_every_required_operator_has_a_row_with_every_field():
    text = " ".join(f"{o.name} {o.source}" for o in literature.OPERATORS)
    for name in REQUIRED:
        assert name in text, name
    relations = set(typing.get_args(literature.Relation))
    for o in literature.OPERATORS:
        assert o.relation in relations, o.name
        for field, value in vars(o).items():
            assert value.strip(), f"{o.name}: empty {field}"


def test_rows_with_a_figure_name_where_it_was_read_and_others_say_so():
    for o in literature.OPERATORS:
        has_figure = bool(re.search(r"\d", o.result.replace("2-D", "")))
        quoted = "figure not quoted" in o.result
        assert has_figure or quoted or o.result_source == "this report", o.name
        assert o.result_source.strip() and o.result_source != "-", o.name


def test_the_mlp_mixer_row_says_what_the_seed_gets_right_and_wrong():
    mixer = next(o for o in literature.OPERATORS if o.name.startswith("MLP-Mixer"))
    assert mixer.relation == "different class"
    assert "gets right" in mixer.relation_detail and "gets wrong" in mixer.relation_detail
    for fact in ("every channel", "shift-invariant", "GELU"):
        assert fact in mixer.relation_detail


@pytest.mark.parametrize("width", [64, 256])
def test_the_complexity_paragraph_carries_the_computed_crossovers(width):
    text = literature.complexity(width)
    assert "O(L²·D)" in text and "O(L·D·log L)" in text
    cross = flops.crossover_length("fft_conv", "direct_conv", width)
    assert f"from L={cross}" in text
    assert f"{flops.operator_costs(4096, width)['fft_conv']:.3g}" in text


def test_the_section_is_markdown_safe(tmp_path):
    blocks = literature.section(256)
    doc = Document("t")
    doc.add(*blocks)
    md = doc.markdown(tmp_path)
    table = next(b for b in blocks if isinstance(b, Table))
    assert len(table.rows) == len(literature.OPERATORS)
    for row in table.rows:
        assert len(row) == len(table.header)
        for cell in row:
            assert "|" not in cell and "\n" not in cell, cell  # would break the table
            assert cell.count("`") % 2 == 0, cell  # code spans closed
            assert "*" not in cell.replace("`", ""), cell  # no accidental emphasis
    assert "## Has this been studied?" in md and "GFNet" in md
    assert all(line.count("|") == len(table.header) + 1 for line in md.splitlines()
               if line.startswith("| GFNet"))  # fmt: skip
