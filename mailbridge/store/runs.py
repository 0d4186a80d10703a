"""One row per sync of a channel: what `status`, `doctor` and alerts read."""

from __future__ import annotations

from typing import Any

from mailbridge.store.db import Store, insert_row, now, update_row


def start(db: Store, channel: str) -> int:
    return insert_row(db, "runs", {"channel": channel, "started_at": now(), "status": "running"})


def finish(db: Store, run: int, status: str, counts: dict[str, int],
           error: str | None = None) -> None:
    update_row(db, "runs", run,
               {"finished_at": now(), "status": status, "error": error, **counts})


def last_success(db: Store, channel: str) -> str | None:
    row = db.execute("SELECT max(finished_at) FROM runs WHERE channel=? AND status='ok'",
                     [channel]).fetchone()
    return row[0] if row else None


def latest(db: Store, channel: str) -> dict[str, Any] | None:
    row = db.execute("SELECT status, finished_at, error FROM runs WHERE channel=? "
                     "ORDER BY id DESC LIMIT 1", [channel]).fetchone()
    return dict(zip(("status", "finished_at", "error"), row, strict=True)) if row else None


def consecutive_failures(db: Store, channel: str) -> tuple[int, str | None]:
    """(failed syncs since the last one that was not a failure, the newest error)."""
    count, error = 0, None
    for status, err in db.execute("SELECT status, error FROM runs WHERE channel=? AND "
                                  "status != 'running' ORDER BY id DESC", [channel]):
        if status != "failed":
            break
        count += 1
        error = error or err
    return count, error


def first_start(db: Store, channel: str) -> str | None:
    return db.execute("SELECT min(started_at) FROM runs WHERE channel=?",
                      [channel]).fetchone()[0]


def last_start(db: Store, channel: str) -> str | None:
    return db.execute("SELECT max(started_at) FROM runs WHERE channel=?",
                      [channel]).fetchone()[0]
