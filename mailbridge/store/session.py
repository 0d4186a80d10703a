"""The usual ways a command uses the store: changing it under the write lock in one
transaction, or reading it without any lock; SQLite errors become one line naming the file."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from mailbridge.store.db import Store, open_store, translate_errors
from mailbridge.store.lock import write_lock

WAIT_SECONDS = 30.0  # a sync holding the lock finishes its batch well within this


@contextlib.contextmanager
def write_transaction(path: Path, wait_seconds: float = WAIT_SECONDS) -> Iterator[Store]:
    with write_lock(path, wait_seconds):
        db = open_store(path)
        try:
            with translate_errors(path), db.atomic():
                yield db
        finally:
            db.close()


@contextlib.contextmanager
def reading(path: Path) -> Iterator[Store]:
    db = open_store(path, readonly=True)
    try:
        with translate_errors(path):
            yield db
    finally:
        db.close()
