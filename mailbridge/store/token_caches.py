"""Delegated Microsoft 365 token caches kept in the store, one row per app, as the services
layer encrypted them (the store never sees one in clear). `version` goes up with every write,
so a host can tell whether another one wrote since it last read.

A host that may refresh a token holds the app's lock (`hold`) from reading the cache until it
has written the refreshed one back, in one transaction: two hosts never redeem the same
refresh token, and neither loses what the other wrote (a sign-in, a rotated refresh token)."""

from __future__ import annotations

from dataclasses import dataclass

from mailbridge.store.db import Store, now


@dataclass(frozen=True)
class CacheRow:
    version: int
    salt: str
    data: str


def hold(db: Store, app: str) -> CacheRow | None:
    """Inside a transaction: wait for, then hold until it ends, the app's cache (locked even
    before its first row exists), and read it."""
    db.lock(f"token-cache:{app}")
    row = db.execute("SELECT version, salt, data FROM token_caches WHERE app=?",
                     [app]).fetchone()
    return CacheRow(*row) if row else None


def save(db: Store, app: str, salt: str, data: str) -> int:
    """Write the app's cache (under `hold`); returns its new version."""
    return db.execute(
        "INSERT INTO token_caches (app, version, salt, data, updated_at) VALUES (?, 1, ?, ?, ?) "
        "ON CONFLICT (app) DO UPDATE SET version = token_caches.version + 1, "
        "salt = excluded.salt, data = excluded.data, updated_at = excluded.updated_at "
        "RETURNING version", [app, salt, data, now()]).fetchone()[0]
