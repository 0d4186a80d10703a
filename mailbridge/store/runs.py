"""One row per sync of a channel: what `status`, `doctor` and alerts read."""

from __future__ import annotations

from typing import Any

from sqlite_utils import Database

from mailbridge.store.db import now


def start(db: Database, channel: str) -> int:
    return db["runs"].insert({"channel": channel, "started_at": now(), "status": "running"}).last_pk


def finish(db: Database, run: int, status: str, counts: dict[str, int],
           error: str | None = None) -> None:
    db["runs"].update(run, {"finished_at": now(), "status": status, "error": error, **counts})


def last_success(db: Database, channel: str) -> str | None:
    row = db.execute("SELECT max(finished_at) FROM runs WHERE channel=? AND status='ok'",
                     [channel]).fetchone()
    return row[0] if row else None


def latest(db: Database, channel: str) -> dict[str, Any] | None:
    row = db.execute("SELECT status, finished_at, error FROM runs WHERE channel=? "
                     "ORDER BY id DESC LIMIT 1", [channel]).fetchone()
    return dict(zip(("status", "finished_at", "error"), row, strict=True)) if row else None
