"""Agents: who answers tickets, with their personal signature, notification opt-ins and role
(administrators may delete from My Inbox)."""

from __future__ import annotations

from typing import Any

from mailbridge.store.db import Store, insert_row, now

COLUMNS = ("name", "email", "signature", "notify_no_messages", "admin", "created_at")
FLAGS = ("notify_no_messages", "admin")
DEFAULTS = {"signature": "", "notify_no_messages": False, "admin": False}


def upsert(db: Store, name: str, fields: dict[str, Any]) -> bool:
    """Add an agent with `fields` (email required; the others default to empty and false),
    or change only the `fields` of an existing one; True when added."""
    if get(db, name) is None:
        insert_row(db, "agents", {"name": name, **_stored({**DEFAULTS, **fields}),
                                  "created_at": now()}, key=None)
        return True
    change(db, name, fields)
    return False


def change(db: Store, name: str, fields: dict[str, Any]) -> None:
    """Set `fields` (keys of COLUMNS) of the agent `name`; the others stay."""
    if not fields:
        return
    values = _stored(fields)
    db.execute(f"UPDATE agents SET {', '.join(f'{c}=?' for c in values)} WHERE name=?",
               [*values.values(), name])


def get(db: Store, name: str) -> dict[str, Any] | None:
    row = db.execute(f"SELECT {', '.join(COLUMNS)} FROM agents WHERE name=?", [name]).fetchone()
    return _row(row) if row else None


def list_agents(db: Store) -> list[dict[str, Any]]:
    return [_row(r) for r in db.execute(f"SELECT {', '.join(COLUMNS)} FROM agents ORDER BY name")]


def remove(db: Store, name: str) -> bool:
    return db.execute("DELETE FROM agents WHERE name=?", [name]).rowcount > 0


def _stored(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: int(bool(v)) if k in FLAGS else v for k, v in fields.items()}


def _row(row: tuple) -> dict[str, Any]:
    found = dict(zip(COLUMNS, row, strict=True))
    for flag in FLAGS:
        found[flag] = bool(found[flag])
    return found
