"""Data goes to stdout in the format asked for (a table on a terminal, tab-separated lines in a
pipe); everything else goes to stderr. Every human-readable format passes through
terminal.py, so nothing that came from mail can drive the terminal; JSON keeps the exact
text, escaped."""

from __future__ import annotations

import csv
import functools
import json
import sys
from collections.abc import Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import typer

from mailbridge.cli.params import one_of
from mailbridge.cli.terminal import for_terminal, json_for_terminal

if TYPE_CHECKING:
    from rich.console import Console


@functools.cache
def err_console() -> Console:
    """Rich for stderr, imported only when a table or a progress bar is drawn: a cron poll
    should not pay for it at every start."""
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
    help="Output format; default: table on a terminal, tsv in a pipe. json/jsonl are stable.",
)
SHOW_FORMAT_OPTION = typer.Option(None, "--format", "-f", parser=FORMAT,
                                  help="json for scripts.")


def default_format(fmt: Format | None) -> Format:
    if fmt is not None:
        return fmt
    return Format.table if sys.stdout.isatty() else Format.tsv


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return for_terminal(json.dumps(value, ensure_ascii=False))
    return for_terminal(str(value).replace("\t", " ").replace("\r", " ").replace("\n", " "))


def _json(obj: Any, indent: int | None = None) -> str:
    return json_for_terminal(json.dumps(obj, indent=indent, ensure_ascii=False, default=str))


def emit(rows: Sequence[dict[str, Any]], fmt: Format | None, columns: Sequence[str],
         title: str | None = None) -> None:
    fmt = default_format(fmt)
    out = sys.stdout
    if fmt is Format.json:
        out.write(_json(list(rows), indent=2) + "\n")
    elif fmt is Format.jsonl:
        for row in rows:
            out.write(_json(row) + "\n")
    elif fmt is Format.csv:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([_cell(r.get(c)) for c in columns] for r in rows)
    elif fmt is Format.tsv:
        out.write("\t".join(columns) + "\n")
        for row in rows:
            out.write("\t".join(_cell(row.get(c)) for c in columns) + "\n")
    else:
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        table = Table(title=title, show_lines=False)
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:  # Text: a subject such as "[link=…]" is not Rich markup
            table.add_row(*(Text(_cell(row.get(c))) for c in columns))
        Console(highlight=False).print(table)
    out.flush()


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
