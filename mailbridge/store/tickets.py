"""Tickets: creating, threading messages into them, and reading them back."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mailbridge.domain.workflow import DEFAULT_PRIORITY, WOKEN_BY_CUSTOMER
from mailbridge.store import events, messages
from mailbridge.store.db import Store, as_read, insert_row, now
from mailbridge.store.query import Query, where


def ensure_queue(db: Store, name: str) -> None:
    """Make the queue if it is new (once a transaction: a batch opens many tickets in one)."""
    if db.once(f"queue:{name}"):
        db.execute("INSERT INTO queues (name, created_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
                   [name, now()])


Lookup = tuple[Sequence[str], int | None, str | None]
"""What threading asks of a message: (the ids it refers to, nearest first; its subject's
ticket token; its own Message-ID)."""


@dataclass
class TicketState:
    """What filing a message needs of its ticket, as the current transaction leaves it."""

    channel: str
    status: str
    count: int  # messages


@dataclass
class Threads:
    """The tickets a batch of messages may thread into, read in at most three queries before
    any of them is filed (a database server answers each query in a round trip; one a
    message was a quarter of a sync's statements), and kept current by `filed` and `add` as
    each is, so a message finds what one before it in the same batch started. Those tickets
    are locked until the batch commits (`Store.lock_row`; SQLite's writer excludes all
    others anyway): an agent closing one on another host meanwhile waits for the batch, so a
    customer's reply in it is judged by the status the ticket has, and reopens it."""

    channel: str
    by_id: dict[str, int]  # Message-ID -> the lowest ticket of a stored message with it
    by_reply: dict[str, int]  # In-Reply-To -> the lowest ticket of a stored reply with it
    tickets: set[int]  # the channel's tickets among the batch's tokens
    states: dict[int, TicketState]  # each of those tickets, and those the batch opened

    @classmethod
    def read(cls, db: Store, channel: str, lookups: Sequence[Lookup]) -> Threads:
        # A lookup a value, each planned as one (an index lookup in messages, then in
        # ticket_messages): a join over all of them was planned, from the stale statistics of
        # tables a first sync is filling, as a scan of all of ticket_messages a batch.
        linked = ("SELECT v.column1, (SELECT min(tm.ticket) FROM messages m JOIN "
                  "ticket_messages tm ON tm.message = m.id WHERE m.channel = ? AND "
                  "m.{column} = v.column1) FROM (VALUES {marks}) AS v")
        ids = {i for related, _, _ in lookups for i in related}
        own = {mid for _, _, mid in lookups if mid}
        tokens = {token for _, token, _ in lookups if token is not None}
        by_id: dict[str, int] = {}
        by_reply: dict[str, int] = {}
        for index, column, wanted in ((by_id, "message_id", ids),
                                      (by_reply, "in_reply_to", own)):
            for value, ticket in _in_chunks(db, linked.replace("{column}", column), [channel],
                                            wanted, "(?)"):
                if ticket is not None:
                    index[as_read(value)] = min(ticket, index.get(as_read(value), ticket))
        states = _states(db, tokens | set(by_id.values()) | set(by_reply.values()))
        return cls(channel, by_id, by_reply,
                   {t for t in tokens if t in states and states[t].channel == channel}, states)

    def find(self, related_ids: Sequence[str], token: int | None,
             message_id: str | None) -> int | None:
        """The ticket a message answers: by the ids it refers to (the first that has one),
        else by the subject token, else the ticket of a reply to it that was stored first
        (mail from several folders, or read and unread mail, does not always arrive in the
        order it was written)."""
        found = next((self.by_id[k] for k in map(as_read, related_ids) if k in self.by_id),
                     None)
        if found is None and token is not None and token in self.tickets:
            found = token
        if found is None and message_id:
            found = self.by_reply.get(as_read(message_id))
        return found

    def filed(self, message_id: str | None, in_reply_to: str | None, ticket: int,
              created: bool) -> None:
        """A message of the batch is now in `ticket` (`created`: a new one, of this channel,
        opened by it; the tickets of every token of the batch were read, so only a new one
        can be missing)."""
        for index, value in ((self.by_id, message_id), (self.by_reply, in_reply_to)):
            if value:
                index[as_read(value)] = min(ticket, index.get(as_read(value), ticket))
        if created:
            self.tickets.add(ticket)
            self.states[ticket] = TicketState(self.channel, "open", 1)

    def add(self, db: Store, ticket: int, message: int, sender: str,
            wakes: Sequence[str] = WOKEN_BY_CUSTOMER) -> None:
        """add_message for a message new to the store, into a ticket `find` gave, from the
        state read with the batch (_file_into): the batch's links are written in one
        statement and its tickets' counts in another (two a message were half of a sync's
        statements)."""
        _file_into(db, self.states[ticket], ticket, message, sender, wakes)


def _states(db: Store, tickets: set[int]) -> dict[int, TicketState]:
    """Each of `tickets` as it is now, locked until the transaction ends (Store.lock_row)."""
    return {ticket: TicketState(*state) for ticket, *state in _in_chunks(
        db, f"SELECT id, channel, status, message_count FROM tickets WHERE id IN ({{marks}})"
            f"{db.lock_row()}", [], tickets)}


def _in_chunks(db: Store, sql: str, first: list[Any], values: set[Any], mark: str = "?"
               ) -> list[Any]:
    """`sql` (`… ({marks})`, after the parameters `first`, each of `values` a `mark`) over
    `values`, 500 at a time (SQLite's limit on bound parameters)."""
    wanted, rows = sorted(values), []
    for start in range(0, len(wanted), 500):
        chunk = wanted[start:start + 500]
        rows += db.execute(sql.format(marks=", ".join([mark] * len(chunk))),
                           [*first, *chunk]).fetchall()
    return rows


def create(db: Store, channel: str, queue: str, subject: str, requester_name: str,
           requester_email: str, kind: str, priority: str = DEFAULT_PRIORITY,
           message: int | None = None) -> int:
    """A new open ticket; with `message`, the message that opens it (what add_message would
    do to a new ticket, without its statements: the link is written as the transaction
    commits, with the other new tickets' links)."""
    ensure_queue(db, queue)
    stamp = now()
    ticket = insert_row(db, "tickets", {
        "channel": channel, "queue": queue, "status": "open", "kind": kind,
        "subject": subject, "requester_name": requester_name,
        "requester_email": requester_email, "created_at": stamp, "updated_at": stamp,
        "message_count": 0 if message is None else 1, "priority": priority,
    })
    if message is not None:
        db.stage(_link_messages, (ticket, message, stamp))
    events.emit(db, events.TICKET_CREATED, channel, ticket, queue=queue, subject=subject,
                requester=requester_email, classification=kind)
    return ticket


def _link_messages(db: Store, rows: list[tuple[int, int, str]]) -> None:
    """The messages the transaction filed (create, _file_into), linked as it commits, in
    one statement (filing reads a batch's threads from tickets.Threads, not from these
    rows)."""
    db.executemany("INSERT INTO ticket_messages (ticket, message, added_at) VALUES (?, ?, ?)",
                   rows)


def _bump_tickets(db: Store, rows: list[tuple[int, bool, str]]) -> None:
    """The tickets _file_into filed into: their counts go up by what was added, and their
    status is set only where the mail woke them (not written back from what was read), in
    one statement a hundred tickets."""
    bumps: dict[int, tuple[int, bool, str]] = {}
    for ticket, woken, stamp in rows:
        added, was_woken, _ = bumps.get(ticket, (0, False, stamp))
        bumps[ticket] = (added + 1, was_woken or woken, stamp)
    rows_of = [(ticket, added, int(woken), stamp)
               for ticket, (added, woken, stamp) in bumps.items()]
    for start in range(0, len(rows_of), 100):
        chunk = rows_of[start:start + 100]
        db.execute(
            "UPDATE tickets SET message_count = message_count + u.column2, "
            "updated_at = u.column4, "
            "status = CASE WHEN u.column3 = 1 THEN 'open' ELSE tickets.status END "
            "FROM (VALUES " + ", ".join(["(CAST(? AS BIGINT), CAST(? AS BIGINT), "
                                         "CAST(? AS BIGINT), ?)"] * len(chunk)) +
            ") AS u WHERE tickets.id = u.column1", [v for row in chunk for v in row])


def _file_into(db: Store, state: TicketState, ticket: int, message: int, sender: str,
               wakes: Sequence[str]) -> None:
    """`message` added to `ticket`, which is `state` (kept current): its events now, in the
    order messages are filed; its link and the ticket's count and status as the transaction
    commits (_link_messages, _bump_tickets). A ticket in one of the states `wakes` is open
    again. The sender is told as PostgreSQL stores it (a NUL of broken mail as U+FFFD)."""
    woken = state.status in wakes
    if state.count:
        events.emit(db, events.MESSAGE_ADDED, state.channel, ticket, message=message,
                    sender=as_read(sender))
    if woken:
        events.emit(db, events.TICKET_REOPENED, state.channel, ticket, by="message",
                    was=state.status, message=message)
        state.status = "open"
    state.count += 1
    stamp = now()
    db.stage(_link_messages, (ticket, message, stamp))
    db.stage(_bump_tickets, (ticket, woken, stamp))


def add_message(db: Store, ticket: int, message: int,
                wakes: Sequence[str] = WOKEN_BY_CUSTOMER) -> None:
    """Thread a message into a ticket; a ticket in one of the states `wakes` is open again
    (a customer's answer: pending or closed; an auto-reply: none). The assignee stays. A
    message after the first is a `message.added` event (the first comes with
    `ticket.created`). One message at a time (an agent's reply or forward); a batch of new
    mail goes through Threads.add."""
    sender = db.execute("SELECT from_email FROM messages WHERE id=?", [message]).fetchone()[0]
    _file_into(db, _states(db, {ticket})[ticket], ticket, message, sender or "", wakes)


LIST_COLUMNS = ("id", "channel", "queue", "status", "priority", "assignee", "kind",
                "requester_email", "subject", "message_count", "created_at", "updated_at")

# domain.workflow.SORTS as SQL; `priority`: most urgent first (unknown values last)
_URGENCY = ("CASE priority WHEN 'urgent' THEN 0 WHEN 'high' THEN 1 WHEN 'normal' THEN 2 "
            "WHEN 'low' THEN 3 ELSE 4 END")
ORDER = {"id": "id", "created": "created_at DESC, id DESC",
         "updated": "updated_at DESC, id DESC",
         "priority": f"{_URGENCY}, updated_at DESC, id DESC"}


@dataclass(frozen=True)
class Filter:
    """What `tickets list` narrows to; None (or False) leaves a field free."""

    channel: str | None = None
    queue: str | None = None
    status: str | None = None
    priority: str | None = None
    assignee: str | None = None
    unassigned: bool = False

    def conditions(self, prefix: str = "") -> list[tuple[str, Any]]:
        """(SQL, value) pairs for store.query.where; `prefix`: the tickets table's alias."""
        return [(f"{prefix}channel = ?", self.channel), (f"{prefix}queue = ?", self.queue),
                (f"{prefix}status = ?", self.status), (f"{prefix}priority = ?", self.priority),
                (f"{prefix}assignee = ?", self.assignee),
                (f"{prefix}assignee IS NULL", self.unassigned)]


def list_tickets(db: Store, only: Filter = Filter(), sort: str = "id") -> Query:
    """Tickets in the order `sort` names (see ORDER; store/query.py: read some, or count)."""
    filters, params = where(only.conditions())
    return Query(db, f"SELECT {', '.join(LIST_COLUMNS)} FROM tickets{filters} "
                     f"ORDER BY {ORDER[sort]}",
                 params, lambda row: dict(zip(LIST_COLUMNS, row, strict=True)))


def get(db: Store, ticket: int) -> dict[str, Any] | None:
    row = db.execute(f"SELECT {', '.join(LIST_COLUMNS)} FROM tickets WHERE id=?",
                     [ticket]).fetchone()
    return dict(zip(LIST_COLUMNS, row, strict=True)) if row else None


def messages_of(db: Store, ticket: int) -> list[dict[str, Any]]:
    ids = [r[0] for r in db.execute("SELECT message FROM ticket_messages WHERE ticket=? "
                                    "ORDER BY message", [ticket])]
    return [messages.details(db, m) for m in ids]


QUEUE_COLUMNS = ("queue", "open", "unassigned", "pending", "total")


def queue_counts(db: Store) -> list[dict[str, Any]]:
    """Every queue, with its open tickets (and of those the unassigned), its pending ones
    and all (queues without tickets too)."""
    rows = db.execute(
        "SELECT q.name, count(t.id) FILTER (WHERE t.status = 'open'), "
        "count(t.id) FILTER (WHERE t.status = 'open' AND t.assignee IS NULL), "
        "count(t.id) FILTER (WHERE t.status = 'pending'), count(t.id) "
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


def unassigned_open(db: Store, channel: str) -> int:
    return db.execute("SELECT count(*) FROM tickets WHERE channel=? AND status='open' AND "
                      "assignee IS NULL", [channel]).fetchone()[0]


CHANGEABLE = ("status", "priority", "assignee")


def change(db: Store, ticket: int, field: str, value: str | None) -> tuple[bool, str | None]:
    """Set a ticket's status, priority or assignee (None: nobody); returns whether the
    ticket exists and the field's previous value. A change is an event (see CHANGE_EVENTS)."""
    if field not in CHANGEABLE:
        raise ValueError(field)
    row = db.execute(f"SELECT {field}, channel FROM tickets WHERE id=?", [ticket]).fetchone()
    if row is None:
        return False, None
    previous, channel = row
    db.execute(f"UPDATE tickets SET {field}=?, updated_at=? WHERE id=?", [value, now(), ticket])
    kind = CHANGE_EVENTS.get((field, value), CHANGE_EVENTS.get((field, None)))
    if kind and previous != value:
        events.emit(db, kind, channel, ticket, by="hand", to=value, was=previous)
    return True, previous


# The event each change by hand is: by (field, new value), else by (field, None)
CHANGE_EVENTS = {("status", "closed"): events.TICKET_CLOSED,
                 ("status", "open"): events.TICKET_REOPENED,
                 ("status", "pending"): events.TICKET_PENDING,
                 ("assignee", None): events.TICKET_ASSIGNED,
                 ("priority", None): events.TICKET_PRIORITY}
