"""Which backend serves a store, chosen by its URL's scheme and imported only when used (a
cron poll on SQLite never loads psycopg). A new backend is one module with a backend class
like `sqlite.SqliteBackend`, registered here, plus its run of the StoreContract tests."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from importlib import import_module
from typing import Any, Protocol

from mailbridge.errors import StoreError
from mailbridge.store.db import Store

REGISTRY = {
    "sqlite": "mailbridge.store.sqlite:SqliteBackend",
    "postgresql": "mailbridge.store.postgres:PostgresBackend",
}
ALIASES = {"postgres": "postgresql"}


class StoreTarget(Protocol):
    """What the store needs to know of the configuration: where, and how long a lease lasts."""

    url: str
    lease_seconds: int

    def password(self) -> str | None: ...


class Backend(Protocol):
    name: str
    shared: bool  # several hosts at once: leases instead of file locks

    def describe(self) -> str: ...

    def exists(self) -> bool: ...

    def connect(self, readonly: bool = False) -> Store: ...

    def write_lock(self, wait_seconds: float = 0.0) -> contextlib.AbstractContextManager: ...

    def service_lock(self, wait_seconds: float = 0.0) -> contextlib.AbstractContextManager: ...

    def service_pid(self) -> int | None: ...

    def writer_alive(self) -> bool: ...

    def unwritable(self) -> str | None: ...

    def version(self, db: Store) -> str: ...

    def integrity(self, db: Store) -> list[str]: ...

    def close(self) -> None: ...


_open: dict[tuple[str, int], Any] = {}


def scheme(url: str) -> str:
    name = url.split(":", 1)[0].lower() if ":" in url else ""
    name = ALIASES.get(name, name)
    if name not in REGISTRY:
        raise StoreError(f"[store] url {url.split(':', 1)[0]!r}: not a store this mailbridge "
                         f"knows", "use a path, sqlite:///PATH or postgresql://…")
    return name


def backend(target: StoreTarget) -> Backend:
    """The backend for `target`, made once per process (a PostgreSQL pool lives in it)."""
    key = (target.url, target.lease_seconds)
    found = _open.get(key)
    if found is None:
        module, _, cls = REGISTRY[scheme(target.url)].partition(":")
        password: Callable[[], str | None] = target.password
        found = getattr(import_module(module), cls)(target.url, target.lease_seconds, password)
        _open[key] = found
    return found


def close_all() -> None:
    """Close every backend this process opened (pools, at exit and between tests)."""
    while _open:
        _key, found = _open.popitem()
        found.close()


@contextlib.contextmanager
def connection(target: StoreTarget, readonly: bool = False) -> Iterator[Store]:
    db = backend(target).connect(readonly=readonly)
    try:
        yield db
    finally:
        db.close()
