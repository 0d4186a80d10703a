"""Leases: which host syncs which channel (or Microsoft 365 mailbox) when several hosts serve
one shared store, after Znuny's scheduler tables (a node id with its pid, a heartbeat, an
expiry).

A lease row per unit holds its `owner` (host:pid), a `fence` counter raised on every claim,
`lease_until` (renewed by the holder's heartbeat) and `next_due` (when the unit should be
synced next, so each channel is synced once per interval across all hosts). Every time is
the database's clock, in seconds since the epoch, so hosts with skewed clocks agree.

Claims take the row with `SELECT … FOR UPDATE SKIP LOCKED` (not advisory locks, which pin a
connection and break behind PgBouncer). Each commit of synced mail re-reads its lease row
`FOR UPDATE` and checks owner and fence in the same transaction (`check`): a host that was
paused past its lease and woke up after another host claimed the unit writes nothing. A
lease released by hand is fenced too (`release_by_hand` raises the counter)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from mailbridge.errors import TemporaryError
from mailbridge.store.db import Store, insert_row

CHANNEL = ""  # the mailbox of a lease on a whole channel


class LeaseLost(TemporaryError):
    """This host no longer holds the lease it was working under: nothing was written."""


@dataclass(frozen=True)
class Lease:
    channel: str
    mailbox: str
    owner: str
    fence: int

    @property
    def unit(self) -> tuple[str, str]:
        return self.channel, self.mailbox

    def __str__(self) -> str:
        return f"{self.channel}/{self.mailbox}" if self.mailbox else self.channel


def clock(db: Store) -> float:
    """The database's time, in seconds since the epoch."""
    return float(db.execute(f"SELECT {db.clock_sql}").fetchone()[0])


def ensure(db: Store, units: Iterable[tuple[str, str]]) -> None:
    """A row for every unit, due now if it is new."""
    with db.atomic():
        stamp = clock(db)
        db.executemany("INSERT INTO leases (channel, mailbox, fence, next_due) "
                       "VALUES (?, ?, 0, ?) ON CONFLICT DO NOTHING",
                       [(c, m, stamp) for c, m in units])


Stale = Callable[[str], bool]  # a holder known to be gone before its lease runs out


def due(db: Store, units: Sequence[tuple[str, str]], stale: Stale = lambda _owner: False
        ) -> list[tuple[str, str]]:
    """Units of `units` that are due and free (or whose holder's lease ran out, or whose
    holder is `stale`), the longest overdue first. Only a hint: `claim` decides under the
    row lock."""
    wanted = set(units)
    rows = db.execute(
        f"SELECT channel, mailbox, owner, lease_until < {db.clock_sql} FROM leases "
        f"WHERE next_due <= {db.clock_sql} ORDER BY next_due")
    return [(c, m) for c, m, holder, ran_out in rows
            if (c, m) in wanted and (holder is None or ran_out or stale(holder))]


def claim(db: Store, unit: tuple[str, str], owner: str, lease_seconds: float,
          due_only: bool = True, stale: Stale = lambda _owner: False) -> Lease | None:
    """Take the unit's lease if nobody holds it (or the holder's ran out, or the holder is
    `stale`: a process of this host that has died) and, with `due_only`, it is due. None if
    another host has it, or is claiming it right now."""
    with db.atomic():
        row = db.execute(
            f"SELECT owner, lease_until, next_due, {db.clock_sql} FROM leases "
            f"WHERE channel=? AND mailbox=?{db.lock_row(skip_locked=True)}", list(unit)
        ).fetchone()
        if row is None:
            return None
        holder, until, next_due, at = row
        if holder is not None and holder != owner and until is not None and until >= at \
                and not stale(holder):
            return None
        if due_only and next_due is not None and next_due > at:
            return None
        fence = db.execute(
            "UPDATE leases SET owner=?, fence=fence+1, lease_until=?, claimed_at=? "
            "WHERE channel=? AND mailbox=? RETURNING fence",
            [owner, at + lease_seconds, at, *unit]).fetchone()[0]
        _event(db, unit[0], unit[1], owner, fence, "claimed", at)
    return Lease(unit[0], unit[1], owner, fence)


def renew(db: Store, lease: Lease, lease_seconds: float) -> bool:
    """Extend a held lease; False if it was lost (expired and claimed by another host, or
    released by hand)."""
    return db.execute(
        f"UPDATE leases SET lease_until = {db.clock_sql} + ? WHERE channel=? AND mailbox=? "
        "AND owner=? AND fence=?",
        [lease_seconds, lease.channel, lease.mailbox, lease.owner, lease.fence]).rowcount == 1


def check(db: Store, lease: Lease) -> None:
    """Inside a commit: hold the lease row until the commit ends and make sure it is still
    ours; otherwise raise LeaseLost, so the transaction writes nothing."""
    row = db.execute(f"SELECT owner, fence FROM leases WHERE channel=? AND mailbox=?"
                     f"{db.lock_row()}", [lease.channel, lease.mailbox]).fetchone()
    if row is None or tuple(row) != (lease.owner, lease.fence):
        holder = f"held by {row[0]}" if row and row[0] else "released"
        raise LeaseLost(f"{lease}: this host's lease was taken over ({holder}); nothing of "
                        "this batch was written", "another host syncs it now")


def release(db: Store, lease: Lease, next_in: float) -> bool:
    """Give the lease up; the unit is next due `next_in` seconds from now."""
    with db.atomic():
        at = clock(db)
        done = db.execute(
            "UPDATE leases SET owner=NULL, lease_until=NULL, next_due=?, released_at=? "
            "WHERE channel=? AND mailbox=? AND owner=? AND fence=?",
            [at + next_in, at, lease.channel, lease.mailbox, lease.owner, lease.fence]
        ).rowcount == 1
        if done:
            _event(db, lease.channel, lease.mailbox, lease.owner, lease.fence, "released", at)
    return done


def release_by_hand(db: Store, channel: str, mailbox: str | None = None) -> list[str]:
    """Free a channel's leases (every mailbox's, unless one is named) and raise their fence,
    so a holder that is only paused cannot write afterwards. Returns the former holders."""
    where, params = "channel=? AND owner IS NOT NULL", [channel]
    if mailbox is not None:
        where, params = where + " AND mailbox=?", [channel, mailbox]
    with db.atomic():
        rows = db.execute(f"SELECT mailbox, owner FROM leases WHERE {where}"
                          f"{db.lock_row()}", params).fetchall()
        db.execute(f"UPDATE leases SET owner=NULL, lease_until=NULL, fence=fence+1, "
                   f"next_due = {db.clock_sql} WHERE {where}", params)
        at = clock(db)
        for box, owner in rows:
            _event(db, channel, box, owner, None, "released by hand", at)
    return [owner for _box, owner in rows]


def holders(db: Store) -> list[dict[str, Any]]:
    """Every lease row, with seconds left on held leases (by the database's clock)."""
    rows = db.execute(f"SELECT channel, mailbox, owner, fence, lease_until - {db.clock_sql}, "
                      f"next_due - {db.clock_sql} FROM leases ORDER BY channel, mailbox")
    return [dict(zip(("channel", "mailbox", "owner", "fence", "expires_in", "due_in"), r,
                     strict=True)) for r in rows]


def events(db: Store, after: int = 0) -> list[dict[str, Any]]:
    rows = db.execute("SELECT id, channel, mailbox, owner, fence, event, at FROM lease_events "
                      "WHERE id > ? ORDER BY id", [after])
    return [dict(zip(("id", "channel", "mailbox", "owner", "fence", "event", "at"), r,
                     strict=True)) for r in rows]


def _event(db: Store, channel: str, mailbox: str, owner: str, fence: int | None, event: str,
           at: float) -> None:
    """A line of the handover history (claims and releases), for `status` and the tests."""
    insert_row(db, "lease_events", {"channel": channel, "mailbox": mailbox, "owner": owner,
                                    "fence": fence, "event": event, "at": at})


def heartbeat(db: Store, owner: str, host: str, pid: int) -> None:
    """This host is alive (status lists hosts with their last heartbeat)."""
    at = clock(db)
    db.execute("INSERT INTO hosts (owner, host, pid, started_at, heartbeat_at) "
               "VALUES (?, ?, ?, ?, ?) ON CONFLICT (owner) DO UPDATE SET "
               "heartbeat_at=excluded.heartbeat_at", [owner, host, pid, at, at])


def forget_host(db: Store, owner: str) -> None:
    db.execute("DELETE FROM hosts WHERE owner=?", [owner])


def hosts(db: Store) -> list[dict[str, Any]]:
    rows = db.execute(f"SELECT owner, host, pid, {db.clock_sql} - started_at, "
                      f"{db.clock_sql} - heartbeat_at FROM hosts ORDER BY owner")
    return [dict(zip(("owner", "host", "pid", "up_seconds", "heartbeat_age"), r, strict=True))
            for r in rows]


def alive(db: Store, stale_after: float) -> set[str]:
    """Owners whose last heartbeat is at most `stale_after` seconds old."""
    return {r[0] for r in db.execute(f"SELECT owner FROM hosts WHERE heartbeat_at >= "
                                     f"{db.clock_sql} - ?", [stale_after])}
