"""A table for a person: aligned columns two spaces apart, no box drawing. On a terminal it
fits the window: the widest columns (subjects, addresses) are cut first, with an ellipsis, so
that a row never wraps; a column that cannot get even a few characters is left out. States
are coloured when colour is on (a terminal without NO_COLOR).

Rich's Table measured every cell of every row on every layout pass: 38 s for 25 000 tickets
at 80 columns. This is one pass to measure, one to write."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rich.cells import cell_len, set_cell_size

from mailbridge.cli.values import shown

GAP = 2
MIN_WIDTH = 5  # a cut column keeps at least this much (four characters and the ellipsis)

# SGR colours of state words (doctor's ok/warn/fail, tickets and their priorities, outbox
# rows, channel health)
GREEN, YELLOW, RED, DIM = "32", "33", "31", "2"
STATE_COLOURS = {
    "ok": GREEN, "open": GREEN, "sent": GREEN, "added": GREEN,
    "warn": YELLOW, "quiet": YELLOW, "pending": YELLOW, "sending": YELLOW,
    "partial": YELLOW, "unknown": YELLOW, "never synced": YELLOW,
    "fail": RED, "failed": RED, "failing": RED, "rejected": RED, "lost": RED,
    "unsent": RED, "urgent": RED, "high": YELLOW,
    "closed": DIM, "cancelled": DIM, "disabled": DIM,
}
_RANK = {DIM: 0, GREEN: 1, YELLOW: 2, RED: 3}


@dataclass(frozen=True)
class Style:
    width: int | None = None  # the terminal's columns; None: every cell whole
    colour: bool = False
    now: datetime | None = None  # times as "3 min ago" relative to this


@dataclass(frozen=True)
class Rendered:
    lines: list[str]
    left_out: list[str]  # labels of the columns that did not fit


def render(rows: Iterable[Mapping[str, Any]], columns: Mapping[str, str],
           style: Style) -> Rendered:
    """`columns`: field → label, in order."""
    fields, labels = list(columns), list(columns.values())
    cells = [[shown(row.get(f), style.now) for f in fields] for row in rows]
    natural = [max([cell_len(label)] + [cell_len(r[i]) for r in cells])
               for i, label in enumerate(labels)]
    widths = natural if style.width is None else fit(natural, style.width)
    kept = [i for i, w in enumerate(widths) if w]
    header = _line([labels[i] for i in kept], [widths[i] for i in kept])
    lines = [f"\x1b[1m{header}\x1b[0m" if style.colour else header]
    lines.extend(_line([r[i] for i in kept], [widths[i] for i in kept], style.colour)
                 for r in cells)
    return Rendered(lines, [labels[i] for i, w in enumerate(widths) if not w])


def fit(natural: Sequence[int], width: int) -> list[int]:
    """Column widths whose sum with the gaps is at most `width`: every column whole if they
    fit, else the widest cut to the same cap, the largest that fits (the narrow ones, ids,
    states and times, stay whole). A width of 0 leaves a column out: the last ones go first
    when even MIN_WIDTH each is too much."""
    for count in range(len(natural), 0, -1):
        room = width - GAP * (count - 1)
        kept = list(natural[:count])
        if sum(kept) <= room:
            return kept + [0] * (len(natural) - count)
        cap = _cap(kept, room)
        if cap is not None:
            capped = [min(w, cap) for w in kept]
            spare = room - sum(capped)
            for i, w in enumerate(kept):  # what the cap's rounding left, to the cut ones
                if spare and w > capped[i]:
                    capped[i] += 1
                    spare -= 1
            return capped + [0] * (len(natural) - count)
    return [0] * len(natural)


def _cap(natural: list[int], room: int) -> int | None:
    """The largest cap ≥ MIN_WIDTH with sum(min(w, cap)) ≤ room, or None."""
    if sum(min(w, MIN_WIDTH) for w in natural) > room:
        return None
    low, high = MIN_WIDTH, max(natural)
    while low < high:
        mid = (low + high + 1) // 2
        if sum(min(w, mid) for w in natural) <= room:
            low = mid
        else:
            high = mid - 1
    return low


def cut(text: str, width: int) -> str:
    """`text` in exactly `width` cells: padded, or cut with an ellipsis."""
    if cell_len(text) <= width:
        return text + " " * (width - cell_len(text))
    return set_cell_size(text, width - 1) + "…"


def _line(cells: Sequence[str], widths: Sequence[int], colour: bool = False) -> str:
    parts = []
    for text, width in zip(cells, widths, strict=True):
        fitted = cut(text, width)
        sgr = colour and _colour(text)
        parts.append(f"\x1b[{sgr}m{fitted.rstrip()}\x1b[0m{fitted[len(fitted.rstrip()):]}"
                     if sgr else fitted)
    return (" " * GAP).join(parts).rstrip()


def _colour(text: str) -> str | None:
    """The colour of a state word; of the worst, for a list of them ("failing,quiet")."""
    found = [STATE_COLOURS[w] for w in text.split(",") if w in STATE_COLOURS]
    return max(found, key=_RANK.__getitem__) if found else None
