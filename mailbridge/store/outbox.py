"""The outbox, a state machine: pending → sending → sent | failed | unknown (and cancelled).

A row is marked `sending` and committed before the SMTP transaction starts, so a crash leaves
it `sending`; the next drain turns that into `unknown` instead of sending it again. `unknown`
and `failed` rows go out again only when an operator says so (`outbox retry`)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from mailbridge.store.db import Store, insert_row, now

PENDING, SENDING, SENT, FAILED, UNKNOWN, CANCELLED = (
    "pending", "sending", "sent", "failed", "unknown", "cancelled")
STATES = (PENDING, SENDING, SENT, FAILED, UNKNOWN, CANCELLED)
INTERRUPTED = ("interrupted while sending: it may or may not have gone out; check, then "
               "`mailbridge outbox retry` or cancel")
COLUMNS = ("id", "channel", "ticket", "message", "kind", "envelope_from", "recipients_json",
           "state", "attempts", "last_error", "created_at", "updated_at", "sent_at")


def queue(db: Store, channel: str, ticket: int | None, message: int | None, kind: str,
          envelope_from: str, recipients: list[str], raw: bytes) -> int:
    stamp = now()
    return insert_row(db, "outbox", {
        "channel": channel, "ticket": ticket, "message": message, "kind": kind,
        "envelope_from": envelope_from, "recipients_json": json.dumps(recipients), "raw": raw,
        "state": PENDING, "created_at": stamp, "updated_at": stamp})


def list_rows(db: Store, states: tuple[str, ...] = (),
              sending_is_unknown: bool = False) -> list[dict[str, Any]]:
    """Rows in `states` (default: all), oldest first. `sending_is_unknown`: no drain is
    running, so a row left `sending` was interrupted and is listed as what it is, `unknown`
    (the next drain marks it so)."""
    wanted = set(states)
    if sending_is_unknown and UNKNOWN in wanted:
        wanted.add(SENDING)
    sql = f"SELECT {', '.join(COLUMNS)} FROM outbox"
    if wanted:
        sql += f" WHERE state IN ({', '.join('?' * len(wanted))})"
    rows = [_row(r) for r in db.execute(sql + " ORDER BY id", sorted(wanted))]
    if sending_is_unknown:
        for row in rows:
            if row["state"] == SENDING:
                row.update(state=UNKNOWN, last_error=INTERRUPTED)
    return [r for r in rows if not states or r["state"] in states]


def get(db: Store, row: int) -> dict[str, Any] | None:
    found = db.execute(f"SELECT {', '.join(COLUMNS)} FROM outbox WHERE id=?", [row]).fetchone()
    return _row(found) if found else None


def raw_of(db: Store, row: int) -> bytes:
    return db.execute("SELECT raw FROM outbox WHERE id=?", [row]).fetchone()[0]


def depth(db: Store, channel: str) -> int:
    return db.execute("SELECT count(*) FROM outbox WHERE channel=? AND state IN (?, ?, ?)",
                      [channel, PENDING, SENDING, UNKNOWN]).fetchone()[0]


def set_state(db: Store, row: int, state: str, error: str | None = None,
              attempt: bool = False) -> None:
    stamp = now()
    db.execute("UPDATE outbox SET state=?, last_error=?, updated_at=?, "
               "attempts = attempts + ?, sent_at = CASE WHEN ? = 'sent' THEN ? ELSE sent_at END "
               "WHERE id=?", [state, error, stamp, int(attempt), state, stamp, row])


def recent(db: Store, recipient: str, kind: str, hours: float = 1.0) -> int:
    """How many `kind` mails went (or are going) to `recipient` in the last `hours`."""
    since = (datetime.now(UTC) - timedelta(hours=hours)).isoformat(timespec="seconds")
    return db.execute("SELECT count(*) FROM outbox WHERE kind=? AND created_at >= ? AND "
                      "state != 'cancelled' AND json_extract(recipients_json, '$[0]') = ?",
                      [kind, since, recipient]).fetchone()[0]


def interrupted(db: Store, channel: str) -> list[int]:
    """Rows a crashed drain left `sending`: they may have gone out; make them `unknown`."""
    rows = [r[0] for r in db.execute("SELECT id FROM outbox WHERE state=? AND channel=?",
                                     [SENDING, channel])]
    for row in rows:
        set_state(db, row, UNKNOWN, INTERRUPTED)
    return rows


def _row(row: tuple) -> dict[str, Any]:
    found = dict(zip(COLUMNS, row, strict=True))
    found["recipients"] = json.loads(found.pop("recipients_json"))
    return found
