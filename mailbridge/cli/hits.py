"""Search hits written out: in a table on a terminal, each hit's row followed by its snippet
with the matched words highlighted (when colour is on); in every other format the snippet is
plain text, a field like the others."""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import typer

from mailbridge.cli import pager
from mailbridge.cli.output import Format, default_format, emit, note, table_style
from mailbridge.cli.terminal import for_terminal
from mailbridge.domain.search import segments, unmarked

if TYPE_CHECKING:
    from mailbridge.services.listing import Listing

QUERY = typer.Argument(..., metavar="QUERY...", show_default=False,
                       help='Words (all must match), "a phrase" in quotes (quote it for the '
                            "shell too: '\"a phrase\"'), prefix* for words that begin so. "
                            "Put -- before a query that begins with -.")
HIGHLIGHT = "\x1b[1;33m"  # bold yellow
RESET = "\x1b[0m"
INDENT = "    "
_SPACES = re.compile(r"\s+")


def emit_hits(found: Listing, fmt: Format | None, columns: Sequence[str],
              table: Mapping[str, str], what: str) -> None:
    """`found`'s hits in `fmt`; `table`: the fields a table shows (field → label); `what`:
    the things listed, for "no tickets match"."""
    if default_format(fmt) is not Format.table:
        emit(({**hit, "snippet": _flat(unmarked(hit["snippet"]))} for hit in found), fmt,
             columns, more=found.more)
        return
    from mailbridge.cli.table import render

    hits = list(found)
    if not hits:
        note(f"no {what} match")
        return
    style = table_style()
    rendered = render(hits, table, style)
    with pager.paged():
        out = sys.stdout
        out.write(rendered.lines[0] + "\n")
        for line, hit in zip(rendered.lines[1:], hits, strict=True):
            out.write(line + "\n")
            if hit["snippet"]:
                out.write(INDENT + highlighted(hit["snippet"], style.colour,
                                               style.width and style.width - len(INDENT)) + "\n")
        out.flush()
    if pager.to_terminal() and found.more:
        note(f"... {found.more} more; --limit N or --all to see them")


def highlighted(snippet: str, colour: bool, width: int | None = None) -> str:
    """A marked snippet on one line, made safe for a terminal; the matched words in colour,
    cut at `width` cells."""
    from rich.cells import cell_len, set_cell_size

    parts, used = [], 0
    for text, matched in segments(_flat(snippet)):
        text = for_terminal(text)
        if width is not None:
            room = width - used
            if room <= 0:
                break
            if cell_len(text) > room:
                text = set_cell_size(text, max(room - 1, 0)) + "…"
            used += cell_len(text)
        parts.append(f"{HIGHLIGHT}{text}{RESET}" if matched and colour else text)
    return "".join(parts)


def _flat(text: str) -> str:
    """A snippet on one line: line breaks and runs of spaces as one space."""
    return _SPACES.sub(" ", text).strip()

