"""Internal comments on tickets: notes for agents, kept beside the correspondence and never
sent to the client (quoting reads messages only)."""

from __future__ import annotations

from typing import Any

from mailbridge.store import events
from mailbridge.store.db import Store, insert_row, now

COLUMNS = ("id", "author", "text", "created_at")


def add(db: Store, ticket: int, author: str, text: str) -> int:
    comment = insert_row(db, "ticket_comments", {"ticket": ticket, "author": author,
                                                 "text": text, "created_at": now()})
    channel = db.execute("SELECT channel FROM tickets WHERE id=?", [ticket]).fetchone()
    events.emit(db, events.COMMENT_ADDED, channel[0] if channel else None, ticket,
                comment=comment, author=author)
    return comment


def of(db: Store, ticket: int) -> list[dict[str, Any]]:
    rows = db.execute(f"SELECT {', '.join(COLUMNS)} FROM ticket_comments WHERE ticket=? "
                      "ORDER BY id", [ticket])
    return [dict(zip(COLUMNS, row, strict=True)) for row in rows]
