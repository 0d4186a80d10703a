"""A ticket as an agent sees it before writing to it: what the editor's template shows (the
subject, the recipients, the latest incoming message) and what the guard rails look at (a
closed ticket, one opened by an auto-reply or a bounce)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mailbridge.domain.classify import AUTO_REPLY, BOUNCE
from mailbridge.domain.compose import Quoted
from mailbridge.store import tickets
from mailbridge.store.db import Store

AUTOMATIC_KINDS = (AUTO_REPLY, BOUNCE)


@dataclass(frozen=True)
class Brief:
    ticket: int
    channel: str
    queue: str
    subject: str
    status: str  # open | closed
    kind: str  # human, auto_reply, bounce, list_bulk: what opened the ticket
    last: Quoted | None  # the latest incoming message
    recipients: tuple[str, ...] = ()

    @property
    def automatic(self) -> bool:
        """Opened by an out-of-office reply or a bounce: answering it is rarely meant."""
        return self.kind in AUTOMATIC_KINDS


def brief(db: Store, row: dict[str, Any], recipients: tuple[str, ...] = ()) -> Brief:
    """The brief of a ticket row (`tickets.get`)."""
    incoming = [m for m in tickets.messages_of(db, row["id"]) if m["direction"] == "in"]
    last = None
    if incoming:
        m = incoming[-1]
        stamp = m["sent_at"] or m["stored_at"]
        last = Quoted(m["from_name"] or "", m["from_email"] or "",
                      datetime.fromisoformat(stamp) if stamp else None, m["text"] or "")
    return Brief(row["id"], row["channel"], row["queue"], row["subject"] or "", row["status"],
                 row["kind"], last, recipients)
