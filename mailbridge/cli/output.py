"""Data goes to stdout in the format asked for, by one contract for every command:

- `table` (the default on a terminal): for a person. A list is aligned columns (table.py),
  on a terminal fitted to the window, times relative, states coloured, long output paged; a
  `show` command's table is its page.
- `json`: one JSON document, indented. `jsonl`: one compact JSON value a line (a row of a
  list; a show command's whole record).
- `csv`, `tsv` (tsv is the default in a pipe): a header line, then a line a row (a show
  command: its one record), every value by values.plain's rules.

Everything else goes to stderr. Every human-readable format passes through terminal.py, so
nothing that came from mail can drive the terminal; JSON keeps the exact text, escaped."""

from __future__ import annotations

import csv
import functools
import json
import os
import shutil
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import typer

from mailbridge.cli import pager
from mailbridge.cli.params import LIMIT, one_of
from mailbridge.cli.terminal import for_terminal, json_for_terminal, print_line
from mailbridge.cli.values import plain

if TYPE_CHECKING:
    from rich.console import Console


@functools.cache
def err_console() -> Console:
    """Rich for stderr, imported only when a progress bar is drawn: a cron poll should not
    pay for it at every start."""
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


class Format(StrEnum):
    table = "table"
    json = "json"
    jsonl = "jsonl"
    csv = "csv"
    tsv = "tsv"


FORMAT = one_of("--format", *Format)
FORMAT_OPTION = typer.Option(
    None, "--format", "-f", parser=FORMAT,
    help="table, json, jsonl, csv or tsv; default: table on a terminal, tsv in a pipe. "
         "json/jsonl are stable.",
)
SHOW_FORMAT_OPTION = typer.Option(
    None, "--format", "-f", parser=FORMAT,
    help="table (the page, the default), json, jsonl, csv or tsv (a header and one row).",
)

TERMINAL_LIMIT = 30  # rows a list shows on a terminal unless --limit or --all says otherwise
LIMIT_OPTION = typer.Option(None, "--limit", "-n", parser=LIMIT,
                            help=f"At most this many (default on a terminal: "
                                 f"{TERMINAL_LIMIT}; in a pipe: all).")
ALL_OPTION = typer.Option(False, "--all", help="Every row, also on a terminal.")


def row_limit(limit: int | None, every: bool = False) -> int | None:
    """The rows a list shows: --limit, else all with --all or in a pipe, else
    TERMINAL_LIMIT on a terminal (a person reads the first screen; a script gets all)."""
    if limit is not None or every:
        return limit
    return TERMINAL_LIMIT if sys.stdout.isatty() else None


def default_format(fmt: Format | None) -> Format:
    if fmt is not None:
        return fmt
    return Format.table if pager.to_terminal() else Format.tsv


def _json(obj: Any, indent: int | None = None) -> str:
    return json_for_terminal(json.dumps(obj, indent=indent, ensure_ascii=False, default=str))


def emit(rows: Iterable[Mapping[str, Any]], fmt: Format | None, columns: Sequence[str],
         title: str | None = None, table: Mapping[str, str] | None = None,
         more: int = 0, after: Callable[[], None] | None = None) -> None:
    """A list in `fmt`, streamed row by row (a table is measured first). `table`: the columns
    a table shows, field → label (default: `columns`); `after` writes the rest of a table's
    page. `more`: rows a limit left out, said on stderr to a person."""
    with pager.paged():
        left_out = write(rows, fmt, columns, title, table)
        if after is not None and default_format(fmt) is Format.table:
            after()
    if pager.to_terminal():
        if left_out:
            note(f"(not shown at this width: {', '.join(left_out)}; --format tsv has every "
                 "column)")
        if more:
            note(f"... {more} more; --limit N or --all to see them")


def write(rows: Iterable[Mapping[str, Any]], fmt: Format | None, columns: Sequence[str],
          title: str | None = None, table: Mapping[str, str] | None = None) -> list[str]:
    """`emit` without the pager (for a table inside a page); returns the labels of the
    columns a terminal was too narrow for."""
    fmt = default_format(fmt)
    out = sys.stdout
    left_out: list[str] = []
    if fmt is Format.json:
        _write_json(out, rows)
    elif fmt is Format.jsonl:
        for row in rows:
            out.write(_json(row) + "\n")
    elif fmt is Format.csv:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([plain(r.get(c)) for c in columns] for r in rows)
    elif fmt is Format.tsv:
        out.write("\t".join(columns) + "\n")
        for row in rows:
            out.write("\t".join(plain(row.get(c)) for c in columns) + "\n")
    else:
        from mailbridge.cli.table import render

        if title:
            out.write(for_terminal(title) + "\n")
        rendered = render(rows, table or {c: c for c in columns}, table_style())
        out.write("\n".join(rendered.lines) + "\n")
        left_out = rendered.left_out
    out.flush()
    return left_out


def _write_json(out, rows: Iterable[Any]) -> None:
    """What json.dumps(list(rows), indent=2) writes, a row at a time."""
    opened = False
    for row in rows:
        out.write(",\n" if opened else "[\n")
        opened = True
        out.write("\n".join("  " + line for line in _json(row, indent=2).splitlines()))
    out.write("\n]\n" if opened else "[]\n")


def table_style():
    """On a terminal: fit its width, times relative to now, colour unless NO_COLOR (or a
    dumb terminal). Elsewhere every cell whole, times as stored, no colour."""
    from mailbridge.cli.table import Style

    if not pager.to_terminal():
        return Style()
    colour = not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
    return Style(shutil.get_terminal_size().columns, colour, datetime.now(UTC))


def print_fitted(line: str) -> None:
    """A line of a page that is cut, not wrapped, at a terminal's width."""
    from mailbridge.cli.table import cut

    width = table_style().width
    print_line(cut(line, width).rstrip() if width else line)


def emit_record(record: Mapping[str, Any], fmt: Format | None,
                page: Callable[[], None]) -> None:
    """A `show` command's record: `page()` writes it for a person (table, the default; paged
    on a terminal); json indented, jsonl on one line, csv and tsv a header and one row."""
    if fmt in (None, Format.table):
        with pager.paged():
            page()
    elif fmt is Format.json:
        emit_json(record)
    elif fmt is Format.jsonl:
        sys.stdout.write(_json(record) + "\n")
    else:
        write([record], fmt, list(record))


def emit_json(obj: Any) -> None:
    sys.stdout.write(_json(obj, indent=2) + "\n")


def confirm(question: str) -> None:
    """Ask on stderr (a piped "y" answers too). Anything but yes raises typer.Abort, which
    the error boundary reports as "cancelled; nothing was changed", exit 2."""
    try:
        agreed = typer.confirm(question, err=True)
    except typer.Abort:  # end of input or Ctrl-C: the prompt's line was never ended
        note("")
        raise
    if not agreed:
        raise typer.Abort()


def note(text: str) -> None:
    """A message for the person, never for a pipe: stderr."""
    typer.echo(for_terminal(text, lines=True), err=True)
