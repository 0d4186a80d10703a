"""The ingest protocol (DESIGN.md §5): fetch a batch without side effects, prepare it in pure
code, write records + ledger + cursor in ONE transaction, and only then ack at the source.
A crash before the commit loses nothing (the source still has it); a crash after the commit
repeats only the ack (the ledger turns the re-fetch into a no-op)."""

from __future__ import annotations

from sqlite_utils import Database

from mailbridge.connectors.base import Batch, Fetched, Fetcher
from mailbridge.pipeline.prepare import prepare
from mailbridge.pipeline.report import (
    DUPLICATE,
    FAILED,
    SEEN,
    UNPARSED,
    Counts,
    Outcome,
    Reporter,
)
from mailbridge.pipeline.tickets import ChannelPlan, file_message
from mailbridge.store import ledger, messages


def ingest(db: Database, plan: ChannelPlan, fetcher: Fetcher, reporter: Reporter) -> Counts:
    counts = Counts()
    for batch in fetcher.fetch(ledger.LedgerState(db, plan.name)):
        outcomes = commit_batch(db, plan, batch)
        fetcher.ack([o.ref for o in outcomes if o.kind != FAILED])
        for item, outcome in zip(batch.items, outcomes, strict=True):
            counts.add(outcome)
            reporter.item(plan.name, outcome, len(item.raw or b""))
    return counts


def commit_batch(db: Database, plan: ChannelPlan, batch: Batch) -> list[Outcome]:
    prepared = {id(item): prepare(item.raw, plan.own_addresses)
                for item in batch.items if item.raw is not None}
    with db.atomic():
        outcomes = [_record(db, plan, item, prepared.get(id(item))) for item in batch.items]
        if batch.cursor is not None:
            ledger.save_cursor(db, plan.name, batch.mailbox, batch.folder, batch.cursor)
    return outcomes


def _record(db: Database, plan: ChannelPlan, item: Fetched, prep) -> Outcome:
    if prep is None:
        return Outcome(item.ref, FAILED, detail=item.error or "unreadable")
    if ledger.seen(db, plan.name, item.ref):
        return Outcome(item.ref, SEEN)
    subject = prep.parsed.subject if prep.parsed else ""
    existing = messages.find_by_fingerprint(db, plan.name, prep.fingerprint)
    if existing is not None:
        ledger.record(db, plan.name, item.ref, prep.fingerprint, existing, DUPLICATE)
        return Outcome(item.ref, DUPLICATE, existing, subject=subject)
    message = messages.insert(db, plan.name, prep.fingerprint, prep.raw, prep.parsed,
                              prep.classification, prep.parse_error)
    if prep.parsed is None:
        ledger.record(db, plan.name, item.ref, prep.fingerprint, message, UNPARSED)
        return Outcome(item.ref, UNPARSED, message, detail=prep.parse_error or "")
    kind, ticket = file_message(db, plan, message, prep.parsed, prep.classification)
    ledger.record(db, plan.name, item.ref, prep.fingerprint, message, kind)
    return Outcome(item.ref, kind, message, ticket, subject)
