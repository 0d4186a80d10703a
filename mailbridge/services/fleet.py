"""Several hosts serving one shared (PostgreSQL) store: this process's identity, the units it
can be given (a channel, or one mailbox of a Microsoft 365 channel), its heartbeat, and
taking and giving back their leases (store/leases.py). On a SQLite store none of this runs:
one host, file locks."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from mailbridge.config.model import Channel, Config
from mailbridge.errors import UsageError
from mailbridge.store import leases
from mailbridge.store.backends import connection
from mailbridge.store.db import Store
from mailbridge.store.leases import Lease
from mailbridge.store.session import exists, reading, write_transaction, writer_alive

log = logging.getLogger("mailbridge.run")

Unit = tuple[str, str]  # (channel, mailbox); mailbox "" for the whole channel


def owner() -> str:
    """Who holds a lease or is sending a row: this host and process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def dead_here(holder: str) -> bool:
    """A lease holder that was a process of this host and is gone (a killed `sync` or `run`):
    its leases need not run out before this host takes them. Another host's holder is
    judged by its lease alone."""
    host, _, pid = holder.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # alive, another user's
    return False


def alive(db: Store, config: Config) -> set[str]:
    """Senders that may still be at work (fresh heartbeat); none besides us on SQLite."""
    if not db.shared:
        return set()
    return leases.alive(db, config.store.lease_seconds)


def sending_alive(db: Store, config: Config) -> Callable[[str | None], bool]:
    """Whether the sender that claimed a `sending` outbox row may still be sending it: on a
    shared store, a host whose heartbeat is fresh; on SQLite, whoever holds the write lock
    (one writer at a time)."""
    if db.shared:
        hosts = leases.alive(db, config.store.lease_seconds)
        return lambda sender: sender in hosts
    writer = writer_alive(config.store)
    return lambda _sender: writer


def units(channels: Sequence[Channel]) -> list[Unit]:
    """What this host can lease: each enabled Microsoft 365 mailbox on its own, so several
    hosts share a channel of many mailboxes; every other channel whole; none pinned to
    another host."""
    found: list[Unit] = []
    for channel in channels:
        if not channel.syncs_here:
            continue  # pinned to another host (`host`)
        if channel.incoming.get("type") == "m365":
            found += [(channel.name, m["address"]) for m in channel.mailboxes if m["enabled"]]
        else:
            found.append((channel.name, leases.CHANNEL))
    return found


def unit_channel(config: Config, unit: Unit) -> Channel:
    """The channel as one unit sees it: a Microsoft 365 channel with only that mailbox."""
    channel = config.require(unit[0])
    if not unit[1]:
        return channel
    boxes = [m for m in channel.mailboxes if m["address"] == unit[1]]
    return replace(channel, incoming={**channel.incoming, "mailboxes": boxes})


def next_in(channel: Channel) -> float:
    """Seconds until the channel is due again by its schedule (a little jitter spreads
    channels that share a schedule)."""
    from mailbridge.services.schedule import trigger_for

    now = datetime.now(UTC)
    fire = trigger_for(channel).get_next_fire_time(None, now)
    return max(0.0, (fire - now).total_seconds()) if fire else 60.0


class Heartbeat:
    """Renews this process's leases and its row in `hosts` every third of `lease_seconds`,
    on a thread and a connection of its own, so a long sync keeps what it holds. A lease that
    cannot be renewed (it ran out while this host was paused, and another host took it) is
    marked lost: its sync stops fetching, and its next commit is refused by the fence."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.seconds = float(config.store.lease_seconds)
        self.owner = owner()
        self._held: dict[Unit, Lease] = {}
        self._lost: set[Unit] = set()
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mailbridge-heartbeat",
                                        daemon=True)

    def start(self) -> Heartbeat:
        self.beat()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.seconds)
        with contextlib.suppress(Exception), connection(self.config.store) as db:
            leases.forget_host(db, self.owner)

    def hold(self, lease: Lease) -> None:
        with self._guard:
            self._held[lease.unit] = lease
            self._lost.discard(lease.unit)

    def drop(self, lease: Lease) -> None:
        with self._guard:
            self._held.pop(lease.unit, None)

    def lost(self, lease: Lease) -> bool:
        with self._guard:
            return lease.unit in self._lost

    def beat(self) -> None:
        host, pid = socket.gethostname(), os.getpid()
        with connection(self.config.store) as db:
            leases.heartbeat(db, self.owner, host, pid)
            with self._guard:
                held = list(self._held.values())
            for lease in held:
                if not leases.renew(db, lease, self.seconds):
                    log.warning("%s: lease lost (taken over after this host fell silent); "
                                "stopping its sync", lease)
                    with self._guard:
                        self._lost.add(lease.unit)

    def _run(self) -> None:
        while not self._stop.wait(self.seconds / 3):
            try:
                self.beat()
            except Exception as exc:  # noqa: BLE001 - the database may be down for a while
                log.warning("heartbeat failed: %s", exc)


@contextlib.contextmanager
def holding(db: Store, heartbeat: Heartbeat, unit: Unit, channel: Channel,
            due_only: bool) -> Iterator[Lease | None]:
    """The unit's lease for the length of the block (None if another host has it), renewed
    by `heartbeat` and given back afterwards with the channel's next due time."""
    lease = leases.claim(db, unit, heartbeat.owner, heartbeat.seconds, due_only=due_only,
                         stale=dead_here)
    if lease is None:
        yield None
        return
    heartbeat.hold(lease)
    try:
        yield lease
    finally:
        heartbeat.drop(lease)
        try:
            leases.release(db, lease, next_in(channel))
        except Exception as exc:  # noqa: BLE001 - it runs out by itself after lease_seconds
            log.warning("%s: could not give the lease back (%s); it runs out in %d s",
                        lease, exc, heartbeat.seconds)


def lease_rows(config: Config) -> list[dict[str, Any]]:
    """`leases list`: every unit, its holder and the seconds left on its lease and until it
    is due (the database's clock). Empty on SQLite, which has no leases."""
    if not exists(config.store):
        return []
    with reading(config.store) as db:
        return leases.holders(db) if db.shared else []


def host_rows(config: Config) -> list[dict[str, Any]]:
    """`leases hosts`: the hosts serving the store and the age of their last heartbeat."""
    if not exists(config.store):
        return []
    with reading(config.store) as db:
        if not db.shared:
            return []
        stale = config.store.lease_seconds
        return [{**h, "alive": h["heartbeat_age"] <= stale} for h in leases.hosts(db)]


def release_by_hand(config: Config, channel: str, mailbox: str | None = None) -> list[str]:
    """Free a stuck lease; its holder, if it is only paused, can write nothing afterwards."""
    config.require(channel)
    with write_transaction(config.store) as db:
        if not db.shared:
            raise UsageError("a SQLite store has no leases: one host syncs it, guarded by "
                             "file locks", "leases are for a shared PostgreSQL store")
        return leases.release_by_hand(db, channel, mailbox)
