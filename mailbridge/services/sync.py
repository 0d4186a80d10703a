"""One-shot sync of channels, and `ingest` of one piped message. Both fetch and parse without
the write lock and take it for each commit only (`writing_per_commit`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from mailbridge.config.model import Channel, Config
from mailbridge.connectors.memory import MemoryFetcher
from mailbridge.errors import EXIT_OK, EXIT_PARTIAL, MailbridgeError
from mailbridge.pipeline.ingest import ingest
from mailbridge.pipeline.report import Counts, Outcome, Reporter
from mailbridge.pipeline.send import DrainResult
from mailbridge.services.connectors import build_fetcher, plan_for
from mailbridge.store import outbox, runs
from mailbridge.store.db import Store, translate_errors
from mailbridge.store.lock import service_lock
from mailbridge.store.session import WAIT_SECONDS, writing_per_commit


@dataclass
class ChannelResult:
    channel: str
    status: str  # ok | partial | failed
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
    if not names:
        return [c for c in config.channels if c.enabled]
    return [config.require(name) for name in names]


@dataclass
class SyncRun:
    channels: list[ChannelResult]
    sends: list[DrainResult]


def sync(config: Config, names: Sequence[str], reporter: Reporter, send: bool = True,
         wait_seconds: float = WAIT_SECONDS) -> SyncRun:
    """Fetch and file new mail for each channel, then send what the outbox holds. The service
    lock makes this the only sync of the store; `wait_seconds` is how long a commit waits for
    another writer (`ingest`, `reprocess`, a reply being queued)."""
    channels = select_channels(config, names)
    with service_lock(config.store_path), \
            writing_per_commit(config.store_path, wait_seconds) as db:
        results = [sync_channel(db, config, ch, reporter) for ch in channels]
        sends = send_outbox(db, config, [c.name for c in channels]) if send else []
        return SyncRun(results, sends)


def send_outbox(db: Store, config: Config, names: list[str],
                should_stop: Callable[[], bool] = lambda: False) -> list[DrainResult]:
    with translate_errors(config.store_path):
        if not any(outbox.depth(db, c.name) for c in config.channels if c.outgoing):
            return []  # nothing to send: do not even load the composing and SMTP code
        from mailbridge.services import outgoing

        return outgoing.drain_all(db, config, names, should_stop)


def sync_channel(db: Store, config: Config, channel: Channel, reporter: Reporter,
                 should_stop: Callable[[], bool] = lambda: False) -> ChannelResult:
    with translate_errors(config.store_path), db.atomic():
        run = runs.start(db, channel.name)
    counts = Counts()
    try:
        with translate_errors(config.store_path):
            first = runs.first_start(db, channel.name)
        plan = plan_for(channel, datetime.fromisoformat(first) if first else None)
        fetcher = build_fetcher(channel, plan)
        try:
            with translate_errors(config.store_path):
                counts = ingest(db, plan, fetcher, reporter, should_stop=should_stop)
        finally:
            fetcher.close()
        counts.errors.extend(fetcher.problems)
    except MailbridgeError as exc:
        result = ChannelResult(channel.name, "failed", counts, exc)
    else:
        bad = counts.failed + counts.unparsed + len(fetcher.problems)
        result = ChannelResult(channel.name, "partial" if bad else "ok", counts)
    with translate_errors(config.store_path), db.atomic():
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
    notes = [result.error.message] if result.error else []
    return "; ".join(notes + result.notes) or None


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

    with writing_per_commit(config.store_path, wait_seconds) as db, \
            translate_errors(config.store_path):
        ingest(db, plan_for(channel), MemoryFetcher([raw]), Collect())
    return outcomes[0]
