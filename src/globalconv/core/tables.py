"""The plain-text tables the commands print: a header, a rule of dashes, one line per row."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any


def format_table(
    header: Sequence[Any], rows: Sequence[Sequence[Any]], *, left: Collection[int] = ()
) -> str:
    """Columns as wide as their widest cell, two spaces apart, right-aligned (the columns whose
    indices are in ``left`` left-aligned); a cell of None prints as '-'."""
    cells = [[str(c) for c in header]]
    cells += [["-" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def line(row: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i in left else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )

    rule = ["-" * w for w in widths]
    return "\n".join([line(cells[0]), line(rule), *map(line, cells[1:])])


__all__ = ["format_table"]
