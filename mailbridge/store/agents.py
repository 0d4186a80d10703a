"""Agents: who answers tickets, with their personal signature and notification opt-ins."""

from __future__ import annotations

from typing import Any

from mailbridge.store.db import Store, insert_row, now

COLUMNS = ("name", "email", "signature", "notify_no_messages", "created_at")


def upsert(db: Store, name: str, email: str, signature: str | None,
           notify_no_messages: bool | None) -> bool:
    """Add an agent, or change the given fields of an existing one; True when added."""
    existing = get(db, name)
    if existing is None:
        insert_row(db, "agents", {"name": name, "email": email, "signature": signature or "",
                                  "notify_no_messages": int(bool(notify_no_messages)),
                                  "created_at": now()}, key=None)
        return True
    db.execute("UPDATE agents SET email=?, signature=?, notify_no_messages=? WHERE name=?",
               [email, existing["signature"] if signature is None else signature,
                existing["notify_no_messages"] if notify_no_messages is None
                else int(notify_no_messages), name])
    return False


def get(db: Store, name: str) -> dict[str, Any] | None:
    row = db.execute(f"SELECT {', '.join(COLUMNS)} FROM agents WHERE name=?", [name]).fetchone()
    return _row(row) if row else None


def list_agents(db: Store) -> list[dict[str, Any]]:
    return [_row(r) for r in db.execute(f"SELECT {', '.join(COLUMNS)} FROM agents ORDER BY name")]


def remove(db: Store, name: str) -> bool:
    return db.execute("DELETE FROM agents WHERE name=?", [name]).rowcount > 0


def _row(row: tuple) -> dict[str, Any]:
    found = dict(zip(COLUMNS, row, strict=True))
    found["notify_no_messages"] = bool(found["notify_no_messages"])
    return found
