"""Engagements mode (ClientSuccess): which mail is a copy worth keeping. Pure rules.

A message counts when a known contact is on one side and the mailbox owner on the other: from
a contact to the owner (in), or from the owner to contacts (out). Only mail inside the window
counts: the last `window_hours`, and never before the channel was connected."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from mailbridge.domain.message import ParsedMessage

IN, OUT = "in", "out"


@dataclass(frozen=True)
class Match:
    direction: str  # IN | OUT
    contacts: tuple[tuple[str, str], ...]  # (address, client), every contact that matched


def match(parsed: ParsedMessage, owner: Iterable[str],
          contacts: Mapping[str, str]) -> Match | None:
    """`owner`: the owner's address and aliases; `contacts`: address → client, lower case."""
    mine = {a.lower() for a in owner}
    sender = parsed.sender.email.lower() if parsed.sender else ""
    recipients = [a.email.lower() for a in (*parsed.to, *parsed.cc) if a.email]
    if sender in mine:
        found = [(r, contacts[r]) for r in dict.fromkeys(recipients) if r in contacts]
        return Match(OUT, tuple(found)) if found else None
    if sender in contacts and mine.intersection(recipients):
        others = [(r, contacts[r]) for r in dict.fromkeys(recipients)
                  if r in contacts and r != sender]
        return Match(IN, ((sender, contacts[sender]), *others))
    return None


def window_start(now: datetime, window_hours: float, connected_at: datetime | None) -> datetime:
    start = now - timedelta(hours=window_hours)
    return max(start, connected_at) if connected_at else start


def in_window(occurred: datetime | None, start: datetime) -> bool:
    """Mail without a usable Date is judged by when we see it: now, inside the window."""
    return occurred is None or occurred >= start
