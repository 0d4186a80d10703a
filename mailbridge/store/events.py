"""The event stream: what happened in the store, in order, for scripts (`mailbridge events`)
and hooks (`[[hook]]`, run by `mailbridge run`).

An event is written by the store function that makes the change it reports, in the same
transaction: a rolled-back change leaves no event, a committed one always has its event.
Its `id` is the cursor a reader resumes after (`id > cursor`).

Why the ids can be trusted as a cursor: on PostgreSQL, ids come from a sequence, and two
transactions may take ids 10 and 11 and commit 11 first; a reader that saw 11 and moved its
cursor there would never see 10. So events are not inserted where they are emitted: `emit`
stages them (`Store.stage`), and they are written last, just before the transaction commits,
under a transaction-scoped lock (`db.lock("events")`, an advisory lock on PostgreSQL, held
until the commit ends). Event ids are therefore taken and committed in the same order, and a
reader that sees id 11 already sees 10. Taking the lock last keeps it short (only the insert
and the commit hold it) and free of deadlocks (a transaction holding it waits for nothing
else). On SQLite, writing transactions already exclude each other and the lock is a no-op.
A reader-side horizon (reading only below the oldest running transaction) was the other way;
it needs a transaction id per event and a snapshot query per read, and still delays readers
behind a long sync, so the writers pay the small lock instead."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from mailbridge.store.db import Store, now

TICKET_CREATED = "ticket.created"
MESSAGE_ADDED = "message.added"
TICKET_CLOSED = "ticket.closed"
TICKET_REOPENED = "ticket.reopened"
TICKET_MOVED = "ticket.moved"
TICKET_PENDING = "ticket.pending"
TICKET_ASSIGNED = "ticket.assigned"
TICKET_PRIORITY = "ticket.priority"
COMMENT_ADDED = "comment.added"
REPLY_QUEUED = "reply.queued"
OUTBOX_SENT = "outbox.sent"
OUTBOX_FAILED = "outbox.failed"
OUTBOX_UNKNOWN = "outbox.unknown"
ENGAGEMENT_CREATED = "engagement.created"
OPPORTUNITY_CREATED = "opportunity.created"
OPPORTUNITY_UPDATED = "opportunity.updated"

# Every kind of event, in the order the README lists them (the one list: the CLI's --kind,
# the config's `on` and the docs are checked against it).
KINDS = (TICKET_CREATED, MESSAGE_ADDED, TICKET_CLOSED, TICKET_REOPENED, TICKET_MOVED,
         TICKET_PENDING, TICKET_ASSIGNED, TICKET_PRIORITY,
         COMMENT_ADDED, REPLY_QUEUED, OUTBOX_SENT, OUTBOX_FAILED, OUTBOX_UNKNOWN,
         ENGAGEMENT_CREATED, OPPORTUNITY_CREATED, OPPORTUNITY_UPDATED)

COLUMNS = ("id", "kind", "channel", "ticket", "engagement", "opportunity", "payload",
           "created_at")


def emit(db: Store, kind: str, channel: str | None = None, ticket: int | None = None, /,
         engagement: int | None = None, opportunity: int | None = None,
         **payload: Any) -> None:
    """Record that `kind` happened, as part of the current transaction (written when it
    commits; see the module's docstring). `payload`: a few small JSON values."""
    assert kind in KINDS, kind
    db.stage(_write, {"kind": kind, "channel": channel, "ticket": ticket,
                      "engagement": engagement, "opportunity": opportunity,
                      "payload": json.dumps(payload, sort_keys=True), "created_at": now()},
             last=True)


def _write(db: Store, rows: list[dict[str, Any]]) -> None:
    """The transaction's events, last thing before its commit, under the ordering lock."""
    db.lock("events")
    names = ", ".join(COLUMNS[1:])
    db.executemany(f"INSERT INTO events ({names}) VALUES ({', '.join('?' * len(COLUMNS[1:]))})",
                   [[row[c] for c in COLUMNS[1:]] for row in rows])


def after(db: Store, cursor: int, kinds: Sequence[str] = (), limit: int = 500
          ) -> list[dict[str, Any]]:
    """Up to `limit` events after `cursor`, in order; only `kinds`, if given."""
    where, params = _after(cursor, kinds)
    rows = db.execute(f"SELECT {', '.join(COLUMNS)} FROM events{where} ORDER BY id LIMIT ?",
                      [*params, limit])
    return [_event(row) for row in rows]


def last(db: Store) -> int:
    """The newest event's cursor (0: none yet)."""
    return db.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]


def count_after(db: Store, cursor: int, kinds: Sequence[str] = ()) -> int:
    """How many events (of `kinds`, if given) there are after `cursor`: a hook's lag."""
    where, params = _after(cursor, kinds)
    return db.execute(f"SELECT count(*) FROM events{where}", params).fetchone()[0]


def _after(cursor: int, kinds: Sequence[str]) -> tuple[str, list[Any]]:
    if not kinds:
        return " WHERE id > ?", [cursor]
    return f" WHERE id > ? AND kind IN ({', '.join('?' * len(kinds))})", [cursor, *kinds]


def _event(row: tuple) -> dict[str, Any]:
    found = dict(zip(COLUMNS, row, strict=True))
    found["payload"] = json.loads(found["payload"])
    return found
