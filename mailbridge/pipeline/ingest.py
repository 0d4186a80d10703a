"""The ingest protocol (DESIGN.md §5): fetch a batch without side effects, prepare it in pure
code, write records + ledger + cursor in ONE transaction, and only then ack at the source.
A crash before the commit loses nothing (the source still has it); a crash after the commit
repeats only the ack (the ledger turns the re-fetch into a no-op).

Batches are pipelined: batches k and k+1 are parsed in the two helper processes while batch
k+2 is fetched; after each fetch, every batch whose parse is done is committed and acked (a
batch parsed in-process, a few small messages, at once), and the oldest is waited for only
when both helpers are busy. Commits and acks stay in fetch order,
so cursors never move past a batch that is not committed. Fetching and parsing hold no lock:
the store's write lock is taken by each commit (see `store.session.writing_per_commit`)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
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
from mailbridge.pipeline.tickets import file_message
from mailbridge.store import contacts, ledger, messages
from mailbridge.store.db import Store

Guard = Callable[[Store, str], None]  # (store, the batch's mailbox)


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
    with Preparer(plan.own_addresses, use_helper=parallel) as preparer:
        state = ledger.LedgerState(db, plan.name,
                                   reopen=IGNORED if plan.mode == "engagements" else None,
                                   stopping=should_stop)
        for batch in fetcher.fetch(state):
            if len(pending) >= HELPERS:  # both helpers are busy: wait for the older one
                oldest, job = pending.popleft()
                _finish(db, plan, fetcher, reporter, counts, oldest, job(), guard)
            pending.append((batch, preparer.submit([item.raw for item in batch.items])))
            while pending and pending[0][1].ready():  # what is parsed is committed now
                oldest, job = pending.popleft()
                _finish(db, plan, fetcher, reporter, counts, oldest, job(), guard)
            if should_stop():
                counts.stopped = True
                break
        while pending:
            oldest, job = pending.popleft()
            _finish(db, plan, fetcher, reporter, counts, oldest, job(), guard)
    return counts


def _finish(db: Store, plan: ChannelPlan, fetcher: Fetcher, reporter: Reporter,
            counts: Counts, batch: Batch, prepared: list[Prepared | None],
            guard: Guard | None) -> None:
    outcomes = commit_batch(db, plan, batch, prepared, guard)
    fetcher.ack([o.ref for o in outcomes if o.kind != FAILED])
    for item, outcome in zip(batch.items, outcomes, strict=True):
        counts.add(outcome)
        reporter.item(plan.name, outcome, len(item.raw or b""))


def commit_batch(db: Store, plan: ChannelPlan, batch: Batch,
                 prepared: list[Prepared | None] | None = None,
                 guard: Guard | None = None) -> list[Outcome]:
    if prepared is None:
        prepared = prepare_all([item.raw for item in batch.items], plan.own_addresses)
    with db.atomic():
        db.lock(f"channel:{plan.name}")  # threading reads what is stored, then adds to it
        if guard is not None:
            guard(db, batch.mailbox)
        known = contacts.with_added(db) if plan.mode == "engagements" else {}
        seen = _Seen(db, plan.name, batch.items, prepared)
        outcomes = [_record(db, plan, item, prep, known, seen)
                    for item, prep in zip(batch.items, prepared, strict=True)]
        seen.flush()
        stored = [o.message for o in outcomes if o.message is not None and o.kind != DUPLICATE]
        if stored:
            db.fulltext.add(stored)  # the batch's new messages, in one statement
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
        self.entries: list[tuple[SourceRef, str, int | None, str]] = []

    def record(self, ref: SourceRef, fingerprint: str, message: int | None,
               status: str) -> None:
        """Kept for `flush`, which writes the batch's ledger rows in one statement."""
        self.entries.append((ref, fingerprint, message, status))
        self.statuses[ref] = status
        if message is not None:
            self.messages.setdefault(fingerprint, message)

    def flush(self) -> None:
        ledger.record(self.db, self.channel, self.entries)
        self.entries = []


def _record(db: Store, plan: ChannelPlan, item: Fetched, prep: Prepared | None,
            known_contacts: dict[str, tuple[str, datetime]], seen: _Seen) -> Outcome:
    if prep is None:
        return Outcome(item.ref, FAILED, detail=item.error or "unreadable")
    status = seen.statuses.get(item.ref)
    # Engagements judge ignored mail again once contacts were added (the ledger hands it
    # back to the connector only then): nothing of it was stored, so nothing can double.
    if status is not None and not (status == IGNORED and plan.mode == "engagements"):
        return Outcome(item.ref, SEEN)
    subject = prep.parsed.subject if prep.parsed else ""
    filing = None
    if plan.mode != "tickets" and prep.parsed is not None:
        filing = _copy_filing(plan, prep.parsed, item, known_contacts)
        if filing is None:  # mail the mode does not copy is never stored: only the ledger
            seen.record(item.ref, prep.fingerprint, None, IGNORED)
            return Outcome(item.ref, IGNORED, subject=subject)
    existing = seen.messages.get(prep.fingerprint)
    if existing is None and filing is not None and prep.parsed is not None \
            and may_be_ours(prep.parsed.message_id):  # our mail, back from Sent Items
        existing = messages.sent_from_here(db, plan.name, prep.parsed.message_id)
    if existing is not None:
        seen.record(item.ref, prep.fingerprint, existing, DUPLICATE)
        return Outcome(item.ref, DUPLICATE, existing, subject=subject)
    message = messages.insert(db, plan.name, prep.fingerprint, prep.raw, prep.parsed,
                              prep.classification, prep.parse_error, index=False)
    if prep.parsed is None:
        seen.record(item.ref, prep.fingerprint, message, UNPARSED)
        return Outcome(item.ref, UNPARSED, message, detail=prep.parse_error or "")
    if filing is not None:
        kind, ticket = filing(db, message), None
    else:
        kind, ticket = file_message(db, plan, message, prep.parsed, prep.classification,
                                    item.ref.mailbox)
    seen.record(item.ref, prep.fingerprint, message, kind)
    return Outcome(item.ref, kind, message, ticket, subject)


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
