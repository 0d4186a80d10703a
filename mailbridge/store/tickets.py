"""Tickets: creating, threading messages into them, and reading them back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mailbridge.store import events, messages
from mailbridge.store.db import Store, insert_row, now
from mailbridge.store.query import Query, where


def ensure_queue(db: Store, name: str) -> None:
    db.execute("INSERT INTO queues (name, created_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
               [name, now()])


def find_for_thread(db: Store, channel: str, related_ids: Sequence[str],
                    token: int | None, message_id: str | None = None) -> int | None:
    """The ticket a message answers: by the ids it refers to, else by the subject token, else
    the ticket of a reply to it that was stored first (mail from several folders, or read and
    unread mail, does not always arrive in the order it was written)."""
    for mid in related_ids:
        row = db.execute(
            "SELECT tm.ticket FROM messages m JOIN ticket_messages tm ON tm.message = m.id "
            "WHERE m.channel=? AND m.message_id=? ORDER BY tm.ticket LIMIT 1",
            [channel, mid],
        ).fetchone()
        if row:
            return row[0]
    if token is not None:
        row = db.execute("SELECT id FROM tickets WHERE id=? AND channel=?",
                         [token, channel]).fetchone()
        if row:
            return row[0]
    if message_id:
        row = db.execute(
            "SELECT tm.ticket FROM messages m JOIN ticket_messages tm ON tm.message = m.id "
            "WHERE m.channel=? AND m.in_reply_to=? ORDER BY tm.ticket LIMIT 1",
            [channel, message_id],
        ).fetchone()
        if row:
            return row[0]
    return None


def create(db: Store, channel: str, queue: str, subject: str, requester_name: str,
           requester_email: str, kind: str) -> int:
    ensure_queue(db, queue)
    stamp = now()
    ticket = insert_row(db, "tickets", {
        "channel": channel, "queue": queue, "status": "open", "kind": kind,
        "subject": subject, "requester_name": requester_name,
        "requester_email": requester_email, "created_at": stamp, "updated_at": stamp,
        "message_count": 0,
    })
    events.emit(db, events.TICKET_CREATED, channel, ticket, queue=queue, subject=subject,
                requester=requester_email, classification=kind)
    return ticket


def add_message(db: Store, ticket: int, message: int, reopen: bool = True) -> None:
    """Thread a message into a ticket; a customer's answer reopens a closed ticket. A message
    after the first is a `message.added` event (the first comes with `ticket.created`)."""
    added = db.execute("INSERT INTO ticket_messages (ticket, message, added_at) "
                       "VALUES (?, ?, ?) ON CONFLICT DO NOTHING RETURNING ticket",
                       [ticket, message, now()]).fetchone()
    if not added:
        return
    channel, status, count, sender = db.execute(
        "SELECT t.channel, t.status, t.message_count, coalesce(m.from_email, '') "
        "FROM tickets t LEFT JOIN messages m ON m.id=? WHERE t.id=?", [message, ticket]).fetchone()
    set_status = ", status='open'" if reopen else ""
    db.execute(f"UPDATE tickets SET message_count = message_count + 1, updated_at=?{set_status} "
               "WHERE id=?", [now(), ticket])
    if count:
        events.emit(db, events.MESSAGE_ADDED, channel, ticket, message=message, sender=sender)
    if reopen and status != "open":
        events.emit(db, events.TICKET_REOPENED, channel, ticket, by="message", was=status,
                     message=message)


LIST_COLUMNS = ("id", "channel", "queue", "status", "kind", "requester_email", "subject",
                "message_count", "created_at", "updated_at")


def list_tickets(db: Store, channel: str | None = None, queue: str | None = None,
                 status: str | None = None) -> Query:
    """Tickets, oldest first (see store/query.py: read some, or count them)."""
    filters, params = where([("channel = ?", channel), ("queue = ?", queue),
                             ("status = ?", status)])
    return Query(db, f"SELECT {', '.join(LIST_COLUMNS)} FROM tickets{filters} ORDER BY id",
                 params, lambda row: dict(zip(LIST_COLUMNS, row, strict=True)))


def get(db: Store, ticket: int) -> dict[str, Any] | None:
    row = db.execute(f"SELECT {', '.join(LIST_COLUMNS)} FROM tickets WHERE id=?",
                     [ticket]).fetchone()
    return dict(zip(LIST_COLUMNS, row, strict=True)) if row else None


def messages_of(db: Store, ticket: int) -> list[dict[str, Any]]:
    ids = [r[0] for r in db.execute("SELECT message FROM ticket_messages WHERE ticket=? "
                                    "ORDER BY message", [ticket])]
    return [messages.details(db, m) for m in ids]


QUEUE_COLUMNS = ("queue", "open", "total")


def queue_counts(db: Store) -> list[dict[str, Any]]:
    """Every queue, with open and total tickets (queues without tickets too)."""
    rows = db.execute(
        "SELECT q.name, count(t.id) FILTER (WHERE t.status = 'open'), count(t.id) "
        "FROM queues q LEFT JOIN tickets t ON t.queue = q.name GROUP BY q.name ORDER BY q.name")
    return [dict(zip(QUEUE_COLUMNS, row, strict=True)) for row in rows]


def move(db: Store, ticket: int, queue: str) -> str | None:
    """Put a ticket in another queue; returns the queue it was in (None: no such ticket)."""
    row = db.execute("SELECT queue, channel FROM tickets WHERE id=?", [ticket]).fetchone()
    if row is None:
        return None
    ensure_queue(db, queue)
    db.execute("UPDATE tickets SET queue=?, updated_at=? WHERE id=?", [queue, now(), ticket])
    if row[0] != queue:
        events.emit(db, events.TICKET_MOVED, row[1], ticket, queue=queue, was=row[0])
    return row[0]


def set_status(db: Store, ticket: int, status: str) -> str | None:
    """Returns the previous status (None: no such ticket)."""
    row = db.execute("SELECT status, channel FROM tickets WHERE id=?", [ticket]).fetchone()
    if row is None:
        return None
    db.execute("UPDATE tickets SET status=?, updated_at=? WHERE id=?", [status, now(), ticket])
    kind = STATUS_EVENTS.get(status)
    if kind and row[0] != status:
        events.emit(db, kind, row[1], ticket, by="hand", was=row[0])
    return row[0]


# The event a change of status by hand is (a status without one emits nothing).
STATUS_EVENTS = {"closed": events.TICKET_CLOSED, "open": events.TICKET_REOPENED}
