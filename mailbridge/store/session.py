"""The usual ways a command uses the store: writing under the write lock (`writing`, or
`write_transaction` for one transaction, or `writing_per_commit` for a sync that takes it for
each commit only), or reading without any lock (`reading`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from mailbridge.store.backends import StoreTarget, backend, connection
from mailbridge.store.db import Store

WAIT_SECONDS = 30.0  # a writer holding the lock finishes its transaction well within this


@contextlib.contextmanager
def writing(target: StoreTarget, wait_seconds: float = 0.0) -> Iterator[Store]:
    """The store opened (created, migrated) under the write lock; transactions are the
    caller's, as a sync commits batch by batch."""
    with backend(target).write_lock(wait_seconds), connection(target) as db, db.translated():
        yield db


@contextlib.contextmanager
def writing_per_commit(target: StoreTarget, wait_seconds: float = WAIT_SECONDS
                       ) -> Iterator[Store]:
    """The store for a sync, a job of `run` or `ingest`, which fetch and parse at length
    between their commits: opened (created, migrated) under the write lock, which is then
    taken again only by each transaction (`db.atomic()`), so other writers get in between.
    Every write must be inside `db.atomic()`. (A shared store has no write lock: its
    transactions are its only guard.)"""
    found = backend(target)
    with found.write_lock(wait_seconds):
        db = found.connect()
    db.guard = lambda: found.write_lock(wait_seconds)
    try:
        with db.translated():
            yield db
    finally:
        db.close()


@contextlib.contextmanager
def write_transaction(target: StoreTarget, wait_seconds: float = WAIT_SECONDS
                      ) -> Iterator[Store]:
    """One change, all or nothing."""
    with writing(target, wait_seconds) as db, db.atomic():
        yield db


@contextlib.contextmanager
def reading(target: StoreTarget) -> Iterator[Store]:
    """The store read-only, no lock."""
    with connection(target, readonly=True) as db, db.translated():
        yield db


def exists(target: StoreTarget) -> bool:
    """Whether the store has been created (readers show nothing yet instead of failing)."""
    return backend(target).exists()


def service_lock(target: StoreTarget, wait_seconds: float = 0.0
                 ) -> contextlib.AbstractContextManager:
    """Held by `run` for its life and by a one-shot `sync` for its duration (SQLite; shared
    backends share the work by leases instead)."""
    return backend(target).service_lock(wait_seconds)


def service_pid(target: StoreTarget) -> int | None:
    """The pid of the `mailbridge run` serving this (SQLite) store, if one is."""
    return backend(target).service_pid()


def writer_alive(target: StoreTarget) -> bool:
    """SQLite: whether the process that last took the write lock may be writing now."""
    return backend(target).writer_alive()
