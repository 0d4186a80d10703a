"""What `store info` and `doctor` say about a store: its backend and version, its schema, row
counts, whether it is intact and, for a database server, how far its clock is from ours."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from mailbridge.store import migrations
from mailbridge.store.backends import StoreTarget, backend
from mailbridge.store.db import Store
from mailbridge.store.fulltext import is_index_table

INTERNAL = (migrations.TABLE,)


def describe(target: StoreTarget) -> str:
    """The store's place for messages: a file path, or a URL without its password."""
    return backend(target).describe()


def summary(target: StoreTarget, db: Store) -> dict[str, Any]:
    found = backend(target)
    done = migrations.applied(db)
    tables = sorted(t for t in db.tables() if t not in INTERNAL and not t.startswith("sqlite_")
                    and not is_index_table(t))
    return {
        "backend": found.name,
        "where": found.describe(),
        "version": found.version(db),
        "schema_version": len(done),
        "schema_latest": done[-1] if done else None,
        "pending_migrations": migrations.pending(db),
        "rows": {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables},
    }


def integrity(target: StoreTarget, db: Store) -> list[str]:
    return backend(target).integrity(db)


def unwritable(target: StoreTarget) -> str | None:
    """Why a writer could not use the store (a read-only file, folder or mount), or None."""
    return backend(target).unwritable()


def clock_skew(db: Store) -> float | None:
    """Seconds the database server's clock is ahead of ours (None for a local file): leases
    are timed by the database, but `status` shows times from both."""
    if not db.shared:
        return None
    before = datetime.now(UTC)
    server = db.execute("SELECT now()").fetchone()[0]
    after = datetime.now(UTC)
    return (server - (before + (after - before) / 2)).total_seconds()
