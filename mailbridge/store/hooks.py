"""Each [[hook]]'s place in the event stream (services/hooks.py runs them): the cursor of
the last event its command succeeded for, and its failures with the time of the next try
(the database's clock, in seconds since the epoch, so every host of a shared store agrees)."""

from __future__ import annotations

from typing import Any

from mailbridge.store import events
from mailbridge.store.db import Store, now

COLUMNS = ("name", "cursor", "failures", "last_error", "failed_at", "next_try", "updated_at")


def ensure(db: Store, name: str) -> None:
    """A new hook starts at the end of the stream: it runs for what happens from now on,
    not for every event the store ever had."""
    with db.atomic():
        db.execute("INSERT INTO hook_state (name, cursor, updated_at) VALUES (?, ?, ?) "
                   "ON CONFLICT DO NOTHING", [name, events.last(db), now()])


def get(db: Store, name: str) -> dict[str, Any] | None:
    row = db.execute(f"SELECT {', '.join(COLUMNS)} FROM hook_state WHERE name=?",
                     [name]).fetchone()
    return dict(zip(COLUMNS, row, strict=True)) if row else None


def waiting(db: Store, name: str) -> float:
    """Seconds until a failing hook may be tried again (0: now)."""
    row = db.execute(f"SELECT next_try - {db.clock_sql} FROM hook_state WHERE name=?",
                     [name]).fetchone()
    return max(0.0, row[0]) if row and row[0] is not None else 0.0


def advance(db: Store, name: str, cursor: int) -> None:
    """The hook's command succeeded for the event `cursor`: its failures are over."""
    db.execute("UPDATE hook_state SET cursor=?, failures=0, next_try=NULL, updated_at=? "
               "WHERE name=? AND cursor < ?", [cursor, now(), name, cursor])


def failed(db: Store, name: str, error: str, retry_in: float) -> int:
    """The hook's command failed: tried again in `retry_in` seconds. Returns its failures
    in a row."""
    stamp = now()
    return db.execute(
        f"UPDATE hook_state SET failures = failures + 1, last_error=?, failed_at=?, "
        f"next_try = {db.clock_sql} + ?, updated_at=? WHERE name=? RETURNING failures",
        [error, stamp, retry_in, stamp, name]).fetchone()[0]
