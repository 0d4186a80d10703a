"""Internal comments on tickets: notes for agents, kept beside the correspondence and never
sent to the client (quoting reads messages only)."""

from __future__ import annotations

from typing import Any

from mailbridge.store.db import Store, insert_row, now

COLUMNS = ("id", "author", "text", "created_at")


def add(db: Store, ticket: int, author: str, text: str) -> int:
    return insert_row(db, "ticket_comments", {"ticket": ticket, "author": author,
                                              "text": text, "created_at": now()})


def of(db: Store, ticket: int) -> list[dict[str, Any]]:
    rows = db.execute(f"SELECT {', '.join(COLUMNS)} FROM ticket_comments WHERE ticket=? "
                      "ORDER BY id", [ticket])
    return [dict(zip(COLUMNS, row, strict=True)) for row in rows]
