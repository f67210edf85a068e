"""A tiny document model rendered both to Markdown and to one self-contained HTML file.

The report is built once as a list of blocks and written twice, so the two files always say the
same thing; HTML embeds every image as a data URI, so it can be mailed as one file.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Paragraph:
    text: str


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass
class Image:
    path: Path  # a PNG file next to the report
    caption: str


@dataclass
class Document:
    title: str
    blocks: list = field(default_factory=list)

    def add(self, *blocks) -> None:
        self.blocks.extend(blocks)

    def markdown(self, relative_to: Path) -> str:
        out = [f"# {self.title}", ""]
        for b in self.blocks:
            if isinstance(b, Heading):
                out += ["#" * b.level + " " + _markdown(b.text), ""]
            elif isinstance(b, Paragraph):
                out += [_markdown(b.text), ""]
            elif isinstance(b, Bullets):
                out += [f"- {_markdown(item)}" for item in b.items] + [""]
            elif isinstance(b, Table):
                cell = lambda text: _markdown(text, in_table=True)  # noqa: E731
                out.append("| " + " | ".join(map(cell, b.header)) + " |")
                out.append("|" + "---|" * len(b.header))
                out += ["| " + " | ".join(map(cell, row)) + " |" for row in b.rows]
                out.append("")
            elif isinstance(b, Image):
                out += [
                    f"![{b.caption}]({b.path.relative_to(relative_to).as_posix()})",
                    "",
                    f"*{b.caption}*",
                    "",
                ]
        return "\n".join(out)

    def html(self) -> str:
        esc = html.escape
        body = [f"<h1>{esc(self.title)}</h1>"]
        for b in self.blocks:
            if isinstance(b, Heading):
                body.append(f"<h{b.level}>{esc(b.text)}</h{b.level}>")
            elif isinstance(b, Paragraph):
                body.append(f"<p>{_inline(b.text)}</p>")
            elif isinstance(b, Bullets):
                body.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in b.items) + "</ul>")
            elif isinstance(b, Table):
                head = "".join(f"<th>{esc(h)}</th>" for h in b.header)
                rows = "".join(
                    "<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>"
                    for row in b.rows
                )
                body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
            elif isinstance(b, Image):
                data = base64.b64encode(b.path.read_bytes()).decode()
                body.append(
                    f'<figure><img alt="{esc(b.caption)}" src="data:image/png;base64,{data}">'
                    f"<figcaption>{esc(b.caption)}</figcaption></figure>"
                )
        return _PAGE.format(title=esc(self.title), body="\n".join(body))


def _markdown(text: str, *, in_table: bool = False) -> str:
    """Text as inert Markdown: names from run folders (``a|b``, ``<tag>``) cannot break a table
    row or land as raw HTML; `code` spans, the only markup the report writes, stay code."""
    text = str(text).replace("\n", " ") if in_table else str(text)
    parts = text.split("`")
    for i, part in enumerate(parts):
        if i % 2 == 0:  # outside code spans
            part = part.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        parts[i] = part.replace("|", "\\|") if in_table else part
    return "`".join(parts)


def _inline(text: str) -> str:
    """Escape, then render `code` spans (the only inline markup the report uses)."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem;
       line-height: 1.45; color: #222; }}
table {{ border-collapse: collapse; margin: 1rem 0; font-size: 0.92rem; }}
th, td {{ border: 1px solid #ccc; padding: 0.3rem 0.6rem; text-align: left; vertical-align: top; }}
th {{ background: #f3f3f3; }}
img {{ max-width: 100%; }}
figure {{ margin: 1.5rem 0; }}
figcaption {{ font-size: 0.9rem; color: #555; }}
code {{ background: #f3f3f3; padding: 0 0.2rem; }}
</style></head>
<body>
{body}
</body></html>
"""
