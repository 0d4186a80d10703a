"""The ingest protocol (DESIGN.md §5): fetch a batch without side effects, prepare it in pure
code, write records + ledger + cursor in ONE transaction, and only then ack at the source.
A crash before the commit loses nothing (the source still has it); a crash after the commit
repeats only the ack (the ledger turns the re-fetch into a no-op).

Batches are pipelined: batches k and k+1 are parsed in the two helper processes while batch
k+2 is fetched and batch k-1 is committed in a thread of its own (_Committer); after each
fetch, every batch whose parse is done is handed to the committer (a batch parsed
in-process, a few small messages, at once), and the oldest is waited for only when both
helpers are busy; the helper it frees is given the new batch before the oldest is committed.
Commits and acks stay in fetch order, one commit at a time, each batch
acked after its commit and before the next commit starts, so cursors never move past a
batch that is not committed. Fetching and parsing hold no lock:
the store's write lock is taken by each commit (see `store.session.writing_per_commit`)."""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from mailbridge.connectors.base import Batch, Fetched, Fetcher
from mailbridge.domain.compose import may_be_ours
from mailbridge.domain.message import ParsedMessage
from mailbridge.domain.source import SourceRef
from mailbridge.pipeline.engagements import engagement_for, file_engagement
from mailbridge.pipeline.plan import ChannelPlan
from mailbridge.pipeline.prepare import Prepared
from mailbridge.pipeline.prepare_helper import HELPERS, Job, Preparer, prepare_all
from mailbridge.pipeline.report import (
    DUPLICATE,
    FAILED,
    IGNORED,
    SEEN,
    UNPARSED,
    Counts,
    Outcome,
    Reporter,
)
from mailbridge.pipeline.sales import counterparts_of, file_sale
from mailbridge.pipeline.tickets import file_message, lookup
from mailbridge.store import contacts, ledger, messages, tickets
from mailbridge.store.db import Store

log = logging.getLogger(__name__)

Guard = Callable[[Store, str], None]  # (store, the batch's mailbox)
# The ledger status of an item the batch stores, until it is filed: the same item again in
# the batch is SEEN, as it was when items were filed one by one.
PENDING = "pending"


def ingest(db: Store, plan: ChannelPlan, fetcher: Fetcher, reporter: Reporter,
           parallel: bool = True, should_stop: Callable[[], bool] = lambda: False,
           guard: Guard | None = None) -> Counts:
    """`should_stop` is asked after each batch is fetched, and by the connector while it
    fetches one (`run` got SIGTERM): the batch is ended with the whole messages read so far,
    it and the one before it are still parsed, committed and acked, nothing more is fetched,
    the rest waits for the next sync. `guard` runs first inside each commit's transaction
    and raises to write nothing (a host whose lease on the channel was taken over)."""
    counts = Counts()
    pending: deque[tuple[Batch, Job]] = deque()
    access = threading.Lock()  # the store: one thread at a time (see _Committer)
    with Preparer(plan.own_addresses, use_helper=parallel) as preparer, \
            _Committer(db, plan, fetcher, reporter, counts, guard, access) as committer:
        state = ledger.LedgerState(db, plan.name,
                                   reopen=IGNORED if plan.mode == "engagements" else None,
                                   stopping=should_stop, access=access)
        for batch in fetcher.fetch(state):
            committer.poll()
            parsed = None
            if len(pending) >= HELPERS:  # both helpers are busy: wait for the older one
                older, job = pending.popleft()
                parsed = (older, job())
            # The helper just freed parses the new batch while the older one is committed.
            pending.append((batch, preparer.submit([item.raw for item in batch.items])))
            if parsed is not None:
                committer.submit(*parsed)
            while pending and pending[0][1].ready():  # what is parsed is committed now
                oldest, job = pending.popleft()
                committer.submit(oldest, job())
            if should_stop():
                counts.stopped = True
                break
        while pending:
            oldest, job = pending.popleft()
            committer.submit(oldest, job())
        committer.settle()
    return counts


class _Committer:
    """Commits batches in a thread of its own, one at a time and in fetch order, while the
    calling thread fetches the next ones, where the store is a server's (`Store.served`): a
    commit then mostly waits for the server, and fetching for the mail server. (Into SQLite,
    a second thread measured slower: 5 % more CPU a message, the two threads contending for
    the GIL; there each commit is made at once, in the calling thread.) One thread at a time
    uses the store (`access`), so a connector's questions (the ledger, cursors) wait for the
    commit in flight. A batch is acked, counted and reported in the calling thread (the
    connection to the mail server is its) once its commit is done, before the next commit
    starts, so a failed commit stops the sync as it did with one thread: nothing after it is
    committed, and nothing of it is acked."""

    def __init__(self, db: Store, plan: ChannelPlan, fetcher: Fetcher, reporter: Reporter,
                 counts: Counts, guard: Guard | None, access: threading.Lock) -> None:
        self.db, self.plan, self.fetcher, self.reporter = db, plan, fetcher, reporter
        self.counts, self.guard, self.access = counts, guard, access
        self._thread = (ThreadPoolExecutor(1, thread_name_prefix="mailbridge-commit")
                        if db.served else None)
        self._flight: tuple[Batch, Future[list[Outcome]]] | None = None

    def __enter__(self) -> _Committer:
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        """After an error elsewhere (a fetch that failed), the commit in flight still ends and
        its batch is acked if it was committed, as when each batch was acked before the next
        was fetched; that ack is a best effort (the error that ended the sync is the one
        raised), and a commit that failed too is logged."""
        try:
            if kind is not None and self._flight is not None:
                try:
                    self.settle()
                except Exception as exc:
                    log.warning("channel %s: %s", self.plan.name, exc)
        finally:
            if self._thread is not None:
                self._thread.shutdown(wait=True)

    def submit(self, batch: Batch, prepared: list[Prepared | None]) -> None:
        self.settle()
        if self._thread is None:  # committed in this thread: acked at once
            self._done(batch, self._commit(batch, prepared))
            return
        self._flight = (batch, self._thread.submit(self._commit, batch, prepared))

    def poll(self) -> None:
        """Ack the commit in flight if it is done (without waiting)."""
        if self._flight is not None and self._flight[1].done():
            self.settle()

    def settle(self) -> None:
        """Wait for the commit in flight, then ack, count and report its batch."""
        if self._flight is None:
            return
        (batch, commit), self._flight = self._flight, None
        self._done(batch, commit.result())

    def _done(self, batch: Batch, outcomes: list[Outcome]) -> None:
        self.fetcher.ack([o.ref for o in outcomes if o.kind != FAILED])
        for item, outcome in zip(batch.items, outcomes, strict=True):
            self.counts.add(outcome)
            self.reporter.item(self.plan.name, outcome, len(item.raw or b""))

    def _commit(self, batch: Batch, prepared: list[Prepared | None]) -> list[Outcome]:
        with self.access:
            return commit_batch(self.db, self.plan, batch, prepared, self.guard)


def commit_batch(db: Store, plan: ChannelPlan, batch: Batch,
                 prepared: list[Prepared | None] | None = None,
                 guard: Guard | None = None) -> list[Outcome]:
    """The batch in one transaction: what each message is (seen before, ignored, a copy of
    one stored, new) is decided first, the new ones are stored in one statement, then each
    is filed in the order it came (a reply finds the ticket that its original, earlier in
    the same batch, opened)."""
    if prepared is None:
        prepared = prepare_all([item.raw for item in batch.items], plan.own_addresses)
    with db.atomic():
        db.lock(f"channel:{plan.name}")  # threading reads what is stored, then adds to it
        if guard is not None:
            guard(db, batch.mailbox)
        known = contacts.with_added(db) if plan.mode == "engagements" else {}
        seen = _Seen(db, plan.name, batch.items, prepared)
        decided = [_decide(db, plan, item, prep, known, seen)
                   for item, prep in zip(batch.items, prepared, strict=True)]
        new = [d for d in decided if isinstance(d, _New) and not d.duplicate]
        ids = messages.insert_many(db, plan.name, [
            (d.prep.fingerprint, d.prep.raw, d.prep.parsed, d.prep.classification,
             d.prep.parse_error) for d in new])
        threads = tickets.Threads.read(db, plan.name, [
            lookup(d.prep.parsed) for d in new if d.prep.parsed is not None and d.copy is None])
        outcomes = [d if isinstance(d, Outcome) else d.settle(db, plan, ids, seen, threads)
                    for d in decided]
        seen.flush()
        if ids:
            db.fulltext.add(list(ids.values()))  # the batch's new messages, in one statement
        if batch.cursor is not None:
            ledger.save_cursor(db, plan.name, batch.mailbox, batch.folder, batch.cursor)
    return outcomes


class _Seen:
    """What the store already has of a batch (ledger entries, messages by fingerprint), read
    in one query each before the batch is filed and kept current while it is: a database
    server answers each query in a round trip, and two a message were a third of a sync."""

    def __init__(self, db: Store, channel: str, items: list[Fetched],
                 prepared: list[Prepared | None]) -> None:
        self.db, self.channel = db, channel
        self.statuses = ledger.statuses(db, channel, [item.ref for item in items])
        self.messages = messages.ids_by_fingerprint(db, channel,
                                                    [p.fingerprint for p in prepared if p])
        self.new: set[str] = set()  # fingerprints the batch stores
        self.entries: list[tuple[SourceRef, str, int | None, str]] = []

    def record(self, ref: SourceRef, fingerprint: str, message: int | None,
               status: str) -> None:
        """Kept for `flush`, which writes the batch's ledger rows in one statement."""
        self.entries.append((ref, fingerprint, message, status))
        self.statuses[ref] = status

    def flush(self) -> None:
        ledger.record(self.db, self.channel, self.entries)
        self.entries = []


@dataclass(frozen=True)
class _New:
    """A message the batch stores (`copy`: a copy is filed), or one that is a copy of such a
    message earlier in the batch (`duplicate`); settled once the batch's messages have ids."""

    item: Fetched
    prep: Prepared
    copy: Callable[[Store, int], str] | None = None
    duplicate: bool = False

    def settle(self, db: Store, plan: ChannelPlan, ids: dict[str, int], seen: _Seen,
               threads: tickets.Threads) -> Outcome:
        ref, prep = self.item.ref, self.prep
        message = ids[prep.fingerprint]
        subject = prep.parsed.subject if prep.parsed else ""
        if self.duplicate:
            seen.record(ref, prep.fingerprint, message, DUPLICATE)
            return Outcome(ref, DUPLICATE, message, subject=subject)
        if prep.parsed is None:
            seen.record(ref, prep.fingerprint, message, UNPARSED)
            return Outcome(ref, UNPARSED, message, detail=prep.parse_error or "")
        if self.copy is not None:
            kind, ticket = self.copy(db, message), None
        else:
            kind, ticket = file_message(db, plan, message, prep.parsed, prep.classification,
                                        ref.mailbox, threads)
        seen.record(ref, prep.fingerprint, message, kind)
        return Outcome(ref, kind, message, ticket, subject)


def _decide(db: Store, plan: ChannelPlan, item: Fetched, prep: Prepared | None,
            known_contacts: dict[str, tuple[str, datetime]], seen: _Seen) -> Outcome | _New:
    if prep is None:
        return Outcome(item.ref, FAILED, detail=item.error or "unreadable")
    status = seen.statuses.get(item.ref)
    # Engagements judge ignored mail again once contacts were added (the ledger hands it
    # back to the connector only then): nothing of it was stored, so nothing can double.
    if status is not None and not (status == IGNORED and plan.mode == "engagements"):
        return Outcome(item.ref, SEEN)
    subject = prep.parsed.subject if prep.parsed else ""
    copy = None
    if plan.mode != "tickets" and prep.parsed is not None:
        copy = _copy_filing(plan, prep.parsed, item, known_contacts)
        if copy is None:  # mail the mode does not copy is never stored: only the ledger
            seen.record(item.ref, prep.fingerprint, None, IGNORED)
            return Outcome(item.ref, IGNORED, subject=subject)
    if prep.fingerprint in seen.new:
        seen.statuses[item.ref] = PENDING
        return _New(item, prep, duplicate=True)
    existing = seen.messages.get(prep.fingerprint)
    if existing is None and copy is not None and prep.parsed is not None \
            and may_be_ours(prep.parsed.message_id):  # our mail, back from Sent Items
        existing = messages.sent_from_here(db, plan.name, prep.parsed.message_id)
    if existing is not None:
        seen.record(item.ref, prep.fingerprint, existing, DUPLICATE)
        return Outcome(item.ref, DUPLICATE, existing, subject=subject)
    seen.new.add(prep.fingerprint)
    seen.statuses[item.ref] = PENDING
    return _New(item, prep, copy)


def _copy_filing(plan: ChannelPlan, parsed: ParsedMessage, item: Fetched,
                 known_contacts: dict[str, tuple[str, datetime]]
                 ) -> Callable[[Store, int], str] | None:
    """Engagements and sales copy only some mail: decided before anything is stored. Returns
    how to file the stored message, or None for mail the mode does not copy. Sales mail is
    filed by the rules of the mailbox it came from (each agent's own on Microsoft 365)."""
    if plan.mode == "engagements":
        found = engagement_for(plan, parsed, item.arrived, known_contacts)
        return None if found is None else (
            lambda db, message: file_engagement(db, plan, message, parsed, item.arrived, found))
    rules = plan.sales_for(item.ref.mailbox)
    others = None if rules is None else counterparts_of(plan, rules, parsed, item.arrived)
    if rules is None or others is None:
        return None
    return lambda db, message: file_sale(db, plan, rules, message, parsed, others)
