"""The usual ways a command uses the store: writing under the write lock (`writing`, or
`write_transaction` for one transaction, or `writing_per_commit` for a sync that takes it for
each commit only), or reading without any lock (`reading`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from mailbridge.store.db import Store, open_store, translate_errors
from mailbridge.store.lock import write_lock

WAIT_SECONDS = 30.0  # a writer holding the lock finishes its transaction well within this


@contextlib.contextmanager
def writing(path: Path, wait_seconds: float = 0.0) -> Iterator[Store]:
    """The store opened (created, migrated) under the write lock; transactions are the
    caller's, as a sync commits batch by batch."""
    with write_lock(path, wait_seconds):
        db = open_store(path)
        try:
            yield db
        finally:
            db.close()


@contextlib.contextmanager
def writing_per_commit(path: Path, wait_seconds: float = WAIT_SECONDS) -> Iterator[Store]:
    """The store for a sync, a job of `run` or `ingest`, which fetch and parse at length
    between their commits: opened (created, migrated) under the write lock, which is then
    taken again only by each transaction (`db.atomic()`), so other writers get in between.
    Every write must be inside `db.atomic()`."""
    with write_lock(path, wait_seconds):
        db = open_store(path)
    db.guard = lambda: write_lock(path, wait_seconds)
    try:
        yield db
    finally:
        db.close()


@contextlib.contextmanager
def write_transaction(path: Path, wait_seconds: float = WAIT_SECONDS) -> Iterator[Store]:
    """One change, all or nothing; SQLite errors become one line naming the file."""
    with writing(path, wait_seconds) as db, translate_errors(path), db.atomic():
        yield db


@contextlib.contextmanager
def reading(path: Path) -> Iterator[Store]:
    """The store read-only, no lock; SQLite errors become one line naming the file."""
    db = open_store(path, readonly=True)
    try:
        with translate_errors(path):
            yield db
    finally:
        db.close()
