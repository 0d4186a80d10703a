"""How one value is written: the same rules for every command. In csv and tsv (`plain`) a
boolean is `true`/`false`, a list or an object JSON text, an empty value nothing; in a table
for a person (`shown`) a boolean is yes/no, a list its items, a time how long ago it was.
Both pass through terminal.py: nothing that came from mail can drive the terminal."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from mailbridge.cli.terminal import for_terminal

_SPACES = str.maketrans({"\t": " ", "\r": " ", "\n": " "})
# What the store writes: ISO 8601 with seconds, and an offset (naive ones are UTC).
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:\d\d)?")


def plain(value: Any) -> str:
    """A csv or tsv field: one line, nothing a terminal acts on."""
    kind = type(value)
    if kind is int:  # most fields of a long listing: ids and counts
        return str(value)
    if kind is not str:
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (list, tuple, dict)):
            value = json.dumps(value, ensure_ascii=False, default=str) if value else ""
        else:
            value = str(value)
    if "\t" in value or "\n" in value or "\r" in value:
        value = value.translate(_SPACES)
    return for_terminal(value)


def shown(value: Any, now: datetime | None = None) -> str:
    """A table cell for a person; with `now`, a time as how long ago (or how soon) it is."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(shown(v) for v in value)
    if now is not None and isinstance(value, str) and _TIME.fullmatch(value):
        return relative(datetime.fromisoformat(value), now)
    return plain(value)


def relative(when: datetime, now: datetime) -> str:
    """"just now", "3 min ago", "in 4 h", "2 days ago"; a date beyond a month."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = (now - when).total_seconds()
    span = abs(seconds)
    if span < 60:
        return "just now"
    if span >= 30 * 86400:
        return when.astimezone(UTC).date().isoformat()
    amount = (f"{span // 60:.0f} min" if span < 3600 else f"{span // 3600:.0f} h"
              if span < 2 * 86400 else f"{span // 86400:.0f} days")
    return f"{amount} ago" if seconds > 0 else f"in {amount}"
