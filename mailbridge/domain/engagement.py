"""Engagements mode (ClientSuccess): which mail is a copy worth keeping. Pure rules.

The document's rule: a message is brought in when it is "TO (directly or via CC) or FROM a
contact" and "TO (directly or via CC) or FROM you". So a contact anywhere in From/To/Cc and
the owner (or an alias) anywhere in From/To/Cc: mail the owner sent is `out`, everything else
on which the owner appears is `in` (also a stranger's mail to the owner with a contact in Cc).

Time is the server's: when the message arrived (IMAP INTERNALDATE, Graph receivedDateTime;
sent mail when the server stored the sent copy), never the sender's Date header. Only mail
that arrived after the channel was connected counts, and a contact counts for a message when
it "exists within twenty-four hours of the message being sent or received" (`window_hours`):
added before, or up to `window_hours` after, the message arrived."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from mailbridge.domain.message import ParsedMessage

IN, OUT = "in", "out"


@dataclass(frozen=True)
class Match:
    direction: str  # IN | OUT
    contacts: tuple[tuple[str, str], ...]  # (address, client), every contact on the message


def match(parsed: ParsedMessage, owner: Iterable[str],
          contacts: Mapping[str, str]) -> Match | None:
    """`owner`: the owner's address and aliases; `contacts`: address → client, lower case.
    The contacts linked are every contact in From/To/Cc but the owner's own addresses."""
    mine = {a.lower() for a in owner}
    sender = parsed.sender.email.lower() if parsed.sender else ""
    people = list(dict.fromkeys(a for a in (sender, *(r.email.lower() for r in
                                                      (*parsed.to, *parsed.cc) if r.email))
                                if a))
    if not mine.intersection(people):
        return None
    found = tuple((a, contacts[a]) for a in people if a in contacts and a not in mine)
    if not found:
        return None
    return Match(OUT if sender in mine else IN, found)


def contacts_for(known: Mapping[str, tuple[str, datetime]], arrived: datetime,
                 window_hours: float) -> dict[str, str]:
    """The contacts (address → client) that count for mail that arrived at `arrived`: those
    added no later than `window_hours` after it."""
    latest = arrived + timedelta(hours=window_hours)
    return {address: client for address, (client, added) in known.items() if added <= latest}


def window_start(now: datetime, window_hours: float, connected_at: datetime | None,
                 contacts_added: Iterable[datetime] = ()) -> datetime:
    """How far back a sync looks: `window_hours` before now, or before the earliest contact
    added in the last `window_hours` (a contact added an hour before this sync still brings
    in mail that arrived up to `window_hours` before it was added); never before the
    connection."""
    start = now - timedelta(hours=window_hours)
    recent = [added for added in contacts_added if added > start]
    if recent:
        start = min(start, min(recent) - timedelta(hours=window_hours))
    return max(start, connected_at) if connected_at else start


def in_window(arrived: datetime | None, start: datetime) -> bool:
    """Mail whose source gives no arrival time (a drop folder) is judged by when we see it:
    now, inside the window."""
    return arrived is None or arrived >= start
