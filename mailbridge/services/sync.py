"""One-shot sync of channels, and `ingest` of one piped message. Both fetch and parse without
the write lock and take it for each commit only (`writing_per_commit`)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from mailbridge.config.model import Channel, Config
from mailbridge.connectors.memory import MemoryFetcher
from mailbridge.errors import (
    EXIT_OK,
    EXIT_PARTIAL,
    MailbridgeError,
    TemporaryError,
    UsageError,
)
from mailbridge.pipeline.ingest import ingest
from mailbridge.pipeline.report import Counts, Outcome, Reporter
from mailbridge.pipeline.send import DrainResult
from mailbridge.services import fleet, health
from mailbridge.services.connectors import build_fetcher, plan_for
from mailbridge.store import contacts, leases, outbox, runs
from mailbridge.store.db import Store
from mailbridge.store.session import WAIT_SECONDS, service_lock, writing_per_commit


@dataclass
class ChannelResult:
    channel: str
    status: str  # ok | partial | failed | lost (another host took the channel over)
    counts: Counts
    error: MailbridgeError | None = None

    @property
    def problem(self) -> str | None:
        """What went wrong, in one line: the failure, or what was wrong with some messages."""
        return self.error.message if self.error else _summary(self.counts)

    def as_dict(self) -> dict:
        return {"channel": self.channel, "status": self.status, **self.counts.as_row(),
                "unparsed": self.counts.unparsed, "error": self.problem}


def select_channels(config: Config, names: Sequence[str]) -> list[Channel]:
    """The channels named, else every enabled one this host syncs (a channel pinned to
    another host with `host` is that host's: its spool is a folder there)."""
    if not names:
        return [c for c in config.channels if c.enabled and c.syncs_here]
    chosen = [config.require(name) for name in names]
    for channel in chosen:
        if not channel.syncs_here:
            raise UsageError(f"channel {channel.name} is synced on host {channel.host}, not "
                             "here (its host key)", f"run the sync on {channel.host}")
    return chosen


@dataclass
class SyncRun:
    channels: list[ChannelResult]
    sends: list[DrainResult]
    alerts: list[health.AlertEvent]  # raised or cleared by this sync, for the CLI to report


def sync(config: Config, names: Sequence[str], reporter: Reporter, send: bool = True,
         wait_seconds: float = WAIT_SECONDS) -> SyncRun:
    """Fetch and file new mail for each channel, raise and clear alerts as `run` does (for
    the channels named, else all), then send what the outbox holds (alert mail too). The
    service lock makes this the only sync of a SQLite store; `wait_seconds` is how long a
    commit waits for another writer (`ingest`, `reprocess`, a reply being queued). On a
    shared store each channel (each Microsoft 365 mailbox) is leased for its sync; one that
    another host is syncing is left to it."""
    channels = select_channels(config, names)
    with service_lock(config.store), writing_per_commit(config.store, wait_seconds) as db:
        if db.shared:
            results = _sync_leased(db, config, channels, reporter)
        else:
            results = [sync_channel(db, config, ch, reporter) for ch in channels]
        alerts = health.raise_and_notify(db, config, datetime.now(UTC), list(names) or None,
                                         logged=False)
        sends = send_outbox(db, config, [c.name for c in channels]) if send else []
        return SyncRun(results, sends, alerts)


def _sync_leased(db: Store, config: Config, channels: Sequence[Channel],
                 reporter: Reporter) -> list[ChannelResult]:
    heartbeat = fleet.Heartbeat(config).start()
    try:
        results = []
        for channel in channels:
            units = fleet.units([channel])
            if not units:  # a Microsoft 365 channel whose mailboxes are all disabled
                results.append(sync_channel(db, config, channel, reporter))
                continue
            leases.ensure(db, units)
            with contextlib.ExitStack() as held:
                got = [lease for unit in units
                       if (lease := held.enter_context(
                           fleet.holding(db, heartbeat, unit, channel, due_only=False)))]
                if not got:
                    busy = TemporaryError(f"channel {channel.name} is being synced by another "
                                          "host", "see `mailbridge status`")
                    results.append(ChannelResult(channel.name, "failed", Counts(), busy))
                    continue
                boxes = {lease.mailbox for lease in got}
                part = channel if len(got) == len(units) else replace(
                    channel, incoming={**channel.incoming, "mailboxes": [
                        m for m in channel.mailboxes if m["address"] in boxes]})
                results.append(sync_channel(
                    db, config, part, reporter,
                    should_stop=lambda got=got: any(heartbeat.lost(x) for x in got),
                    held=got))
        return results
    finally:
        heartbeat.stop()


def send_outbox(db: Store, config: Config, names: list[str],
                should_stop: Callable[[], bool] = lambda: False) -> list[DrainResult]:
    if not any(outbox.depth(db, c.name) for c in config.channels
               if c.outgoing or config.alerts.outgoing or c.sends_as_mailboxes):
        return []  # nothing to send: do not even load the composing and SMTP code
    from mailbridge.services import outgoing

    return outgoing.drain_all(db, config, names, should_stop)


def sync_channel(db: Store, config: Config, channel: Channel, reporter: Reporter,
                 should_stop: Callable[[], bool] = lambda: False,
                 held: Sequence[leases.Lease] = ()) -> ChannelResult:
    """One channel's sync. With `held` leases (a shared store) every commit first checks that
    the batch's mailbox (or the whole channel) is still leased to this host."""
    with db.atomic():
        run = runs.start(db, channel.name)
    counts = Counts()
    by_mailbox = {lease.mailbox: lease for lease in held}

    def guard(db: Store, mailbox: str) -> None:
        leases.check(db, by_mailbox.get(mailbox) or by_mailbox[leases.CHANNEL])

    try:
        now = datetime.now(UTC)
        first = runs.first_start(db, channel.name)
        added = (contacts.added_since(db, now - timedelta(hours=channel.window_hours))
                 if channel.mode == "engagements" else [])
        plan = plan_for(channel, datetime.fromisoformat(first) if first else None, now, added)
        fetcher = build_fetcher(channel, plan)
        try:
            counts = ingest(db, plan, fetcher, reporter, should_stop=should_stop,
                            guard=guard if held else None)
        finally:
            fetcher.close()
        counts.errors.extend(fetcher.problems)
    except leases.LeaseLost as exc:
        result = ChannelResult(channel.name, "lost", counts, exc)
    except MailbridgeError as exc:
        result = ChannelResult(channel.name, "failed", counts, exc)
    else:
        bad = counts.failed + counts.unparsed + len(fetcher.problems)
        result = ChannelResult(channel.name, "partial" if bad else "ok", counts)
    with db.atomic():
        runs.finish(db, run, result.status, counts.as_row(), result.problem)
    return result


def _summary(counts: Counts) -> str | None:
    notes = list(counts.errors)
    if counts.unparsed:
        notes.append(f"{counts.unparsed} message(s) could not be parsed and were stored raw")
    return "; ".join(notes) or None


def exit_code(results: Sequence[ChannelResult], sends: Sequence[DrainResult] = ()) -> int:
    """0 when all went well; a failure's own code when every channel failed the same way
    (so a lone wrong password is still 3); otherwise 4, partial failure. Mail that could not
    be sent makes an otherwise good run 4."""
    failed = [r for r in results if r.status != "ok"]
    if not failed:
        return EXIT_PARTIAL if any(send_problem(s) for s in sends) else EXIT_OK
    codes = {r.error.exit_code for r in failed if r.error}
    if len(failed) == len(results) and len(codes) == 1 and all(r.error for r in failed):
        return codes.pop()
    return EXIT_PARTIAL


def send_problem(result: DrainResult) -> str | None:
    """The rows that did not simply go out, in one line (the failed connection is named by
    the row it stopped)."""
    return "; ".join(result.notes) or None


def ingest_one(config: Config, name: str, raw: bytes, reporter: Reporter,
               wait_seconds: float) -> Outcome:
    """`mailbridge ingest`: one message from an MTA, parsed, then committed under the write
    lock (waiting up to `wait_seconds` for it) before we return."""
    channel = config.require(name)
    outcomes: list[Outcome] = []

    class Collect:
        def item(self, channel: str, outcome: Outcome, size: int) -> None:
            outcomes.append(outcome)
            reporter.item(channel, outcome, size)

    with writing_per_commit(config.store, wait_seconds) as db:
        ingest(db, plan_for(channel), MemoryFetcher([raw]), Collect())
    return outcomes[0]
