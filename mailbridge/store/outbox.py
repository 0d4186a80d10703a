"""The outbox, a state machine: pending → sending → sent | failed | unknown (and cancelled).

A row is marked `sending` and committed before the SMTP transaction starts, so a crash leaves
it `sending`; the next drain turns that into `unknown` instead of sending it again. `unknown`
and `failed` rows go out again only when an operator says so (`outbox retry`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from mailbridge.store import events
from mailbridge.store.db import Store, insert_row, now

PENDING, SENDING, SENT, FAILED, UNKNOWN, CANCELLED = (
    "pending", "sending", "sent", "failed", "unknown", "cancelled")
STATES = (PENDING, SENDING, SENT, FAILED, UNKNOWN, CANCELLED)
INTERRUPTED = ("interrupted while sending: it may or may not have gone out; check, then "
               "`mailbridge outbox retry` or cancel")
COLUMNS = ("id", "channel", "ticket", "message", "kind", "envelope_from", "recipients_json",
           "state", "attempts", "last_error", "created_at", "updated_at", "sent_at",
           "claimed_by", "opportunity", "campaign", "not_before")


def queue(db: Store, channel: str, ticket: int | None, message: int | None, kind: str,
          envelope_from: str, recipients: list[str], raw: bytes,
          opportunity: int | None = None) -> int:
    """`ticket` or `opportunity`: what the mail is about (neither: alert mail)."""
    stamp = now()
    row = insert_row(db, "outbox", {
        "channel": channel, "ticket": ticket, "message": message, "kind": kind,
        "envelope_from": envelope_from, "recipients_json": json.dumps(recipients), "raw": raw,
        "state": PENDING, "created_at": stamp, "updated_at": stamp,
        "opportunity": opportunity})
    if ticket is not None:  # a reply or forward of a ticket (alerts are not ticket work)
        events.emit(db, events.REPLY_QUEUED, channel, ticket, outbox=row, outbox_kind=kind,
                    message=message)
    return row


def hold_until(db: Store, row: int, campaign: int, not_before: str) -> None:
    """Make `row` one of `campaign`'s, to go no earlier than `not_before`."""
    db.execute("UPDATE outbox SET campaign=?, not_before=? WHERE id=?",
               [campaign, not_before, row])


def last_hold(db: Store, envelope_from: str) -> str | None:
    """The latest `not_before` of campaign mail from `envelope_from` still to go."""
    return db.execute("SELECT max(not_before) FROM outbox WHERE envelope_from=? AND "
                      "campaign IS NOT NULL AND state=?", [envelope_from, PENDING]).fetchone()[0]


def campaign_waiting(db: Store, channel: str) -> int:
    """`channel`'s campaign mail still to go."""
    return db.execute("SELECT count(*) FROM outbox WHERE channel=? AND state=? AND "
                      "campaign IS NOT NULL", [channel, PENDING]).fetchone()[0]


def busy_senders(db: Store, per_minute: int, per_day: int) -> list[str]:
    """Envelope senders that have sent (or are sending, or may have sent) `per_minute`
    mails in the last minute or `per_day` in the last 24 hours: their campaign mail waits.
    All their mail counts, not only campaigns': the mailbox's limits are for all of it."""
    moment = datetime.now(UTC)
    minute, day = ((moment - span).isoformat(timespec="seconds")
                   for span in (timedelta(minutes=1), timedelta(days=1)))
    # The last day's rows only, by index: only a sent row has a sent_at (outbox_sent_at);
    # rows in flight or unknown are few (outbox_state).
    rows = db.execute(
        "SELECT envelope_from, sum(CASE WHEN stamp >= ? THEN 1 ELSE 0 END), count(*) FROM ("
        "SELECT envelope_from, sent_at AS stamp FROM outbox WHERE sent_at >= ? "
        "UNION ALL SELECT envelope_from, updated_at FROM outbox WHERE state IN (?, ?) "
        "AND updated_at >= ?) AS recent GROUP BY envelope_from",
        [minute, day, SENDING, UNKNOWN, day])
    return sorted(sender for sender, last_minute, last_day in rows
                  if last_minute >= per_minute or last_day >= per_day)


def list_rows(db: Store, states: tuple[str, ...] = (),
              in_flight: Callable[[str | None], bool] | None = None) -> list[dict[str, Any]]:
    """Rows in `states` (default: all), oldest first. `in_flight(sender)` says whether the
    process (or host) that claimed a `sending` row may still be sending it; a row whose
    sender is gone was interrupted and is listed as what it is, `unknown` (the next drain
    marks it so)."""
    wanted = set(states)
    if in_flight is not None and UNKNOWN in wanted:
        wanted.add(SENDING)
    sql = f"SELECT {', '.join(COLUMNS)} FROM outbox"
    if wanted:
        sql += f" WHERE state IN ({', '.join('?' * len(wanted))})"
    rows = [_row(r) for r in db.execute(sql + " ORDER BY id", sorted(wanted))]
    if in_flight is not None:
        for row in rows:
            if told(row["state"], row["claimed_by"], in_flight) != row["state"]:
                row.update(state=UNKNOWN, last_error=INTERRUPTED)
    return [r for r in rows if not states or r["state"] in states]


def told(state: str | None, sender: str | None,
         in_flight: Callable[[str | None], bool]) -> str | None:
    """A row's state as it is told: `sending` by a sender that is gone (`in_flight` says
    not) is `unknown`, since it was interrupted (the next drain marks it so)."""
    return UNKNOWN if state == SENDING and not in_flight(sender) else state


def get(db: Store, row: int) -> dict[str, Any] | None:
    found = db.execute(f"SELECT {', '.join(COLUMNS)} FROM outbox WHERE id=?", [row]).fetchone()
    return _row(found) if found else None


def raw_of(db: Store, row: int) -> bytes:
    return db.execute("SELECT raw FROM outbox WHERE id=?", [row]).fetchone()[0]


def depth(db: Store, channel: str) -> int:
    return db.execute("SELECT count(*) FROM outbox WHERE channel=? AND state IN (?, ?, ?)",
                      [channel, PENDING, SENDING, UNKNOWN]).fetchone()[0]


def unsent(db: Store, channel: str) -> list[tuple[int, str, int, str | None]]:
    """(id, state, attempts, last_error) of `channel`'s rows whose last attempt did not go
    out: pending after a failed attempt, failed, unknown; oldest first."""
    return [tuple(r) for r in db.execute(
        "SELECT id, state, attempts, last_error FROM outbox WHERE channel=? AND (state IN "
        "(?, ?) OR (state=? AND last_error IS NOT NULL)) ORDER BY id",
        [channel, FAILED, UNKNOWN, PENDING])]


def set_state(db: Store, row: int, state: str, error: str | None = None,
              attempt: bool = False) -> None:
    stamp = now()
    db.execute("UPDATE outbox SET state=?, last_error=?, updated_at=?, "
               "attempts = attempts + ?, sent_at = CASE WHEN ? = 'sent' THEN ? ELSE sent_at END "
               "WHERE id=?", [state, error, stamp, int(attempt), state, stamp, row])
    kind = STATE_EVENTS.get(state)
    if kind:
        channel, ticket, what = db.execute("SELECT channel, ticket, kind FROM outbox "
                                           "WHERE id=?", [row]).fetchone()
        events.emit(db, kind, channel, ticket, outbox=row, outbox_kind=what, error=error)


# The event an outbox row's new state is (the states in between emit none).
STATE_EVENTS = {SENT: events.OUTBOX_SENT, FAILED: events.OUTBOX_FAILED,
                UNKNOWN: events.OUTBOX_UNKNOWN}


def recent(db: Store, recipient: str, kind: str, hours: float = 1.0) -> int:
    """How many `kind` mails went (or are going) to `recipient` in the last `hours`."""
    since = (datetime.now(UTC) - timedelta(hours=hours)).isoformat(timespec="seconds")
    rows = db.execute("SELECT recipients_json FROM outbox WHERE kind=? AND created_at >= ? "
                      "AND state != 'cancelled'", [kind, since])
    return sum(1 for (found,) in rows if json.loads(found)[:1] == [recipient])


def claim_next(db: Store, channel: str, owner: str, after: int = 0,
               held: list[str] = ()) -> dict[str, Any] | None:
    """The oldest pending row of `channel` after row `after` that is due (its `not_before`
    passed), committed as `sending` by `owner` before anything is sent; rows another host is
    claiming now are passed over, and so is campaign mail from the `held` senders."""
    hold = (f" AND NOT (campaign IS NOT NULL AND envelope_from IN "
            f"({', '.join('?' * len(held))}))") if held else ""
    with db.atomic():
        found = db.execute(f"SELECT id FROM outbox WHERE state=? AND channel=? AND id > ? "
                           f"AND (not_before IS NULL OR not_before <= ?){hold} "
                           f"ORDER BY id LIMIT 1{db.lock_row(skip_locked=True)}",
                           [PENDING, channel, after, now(), *held]).fetchone()
        if found is None:
            return None
        set_state(db, found[0], SENDING, attempt=True)
        db.execute("UPDATE outbox SET claimed_by=? WHERE id=?", [owner, found[0]])
        return get(db, found[0])


def interrupted(db: Store, channel: str, alive: set[str] = frozenset()) -> list[int]:
    """Rows a crashed drain left `sending` (claimed by none of the `alive` senders): they
    may have gone out; make them `unknown`."""
    rows = [r[0] for r in db.execute(
        "SELECT id, claimed_by FROM outbox WHERE state=? AND channel=?", [SENDING, channel])
        if r[1] not in alive]
    for row in rows:
        set_state(db, row, UNKNOWN, INTERRUPTED)
    return rows


def _row(row: tuple) -> dict[str, Any]:
    found = dict(zip(COLUMNS, row, strict=True))
    found["recipients"] = json.loads(found.pop("recipients_json"))
    return found
