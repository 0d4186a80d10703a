"""What a list command gets from a service: its rows, read from the store as they are
written out (25 000 tickets never sit in memory as a list), and how many a limit left out."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from mailbridge.store.backends import StoreTarget
from mailbridge.store.db import Store
from mailbridge.store.query import Query
from mailbridge.store.session import exists, reading


@dataclass(frozen=True)
class Listing:
    rows: Iterable[dict[str, Any]]
    more: int = 0  # rows past the limit

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.rows)


def listed(target: StoreTarget, query: Callable[[Store], Query],
           limit: int | None) -> Listing:
    """`query`'s rows, at most `limit`. With a limit the rows are counted first, so that the
    listing can say how many more there are; the rows are read in a reading session of
    their own that lasts while they are iterated."""
    if not exists(target):
        return Listing(())
    more = 0
    if limit is not None:
        with reading(target) as db:
            more = max(0, query(db).count() - limit)
    return Listing(_streamed(target, query, limit), more)


def _streamed(target: StoreTarget, query: Callable[[Store], Query],
              limit: int | None) -> Iterator[dict[str, Any]]:
    with reading(target) as db:
        yield from query(db).rows(limit)


def cut(rows: list[dict[str, Any]], limit: int | None) -> Listing:
    """A listing of rows that had to be read whole (each judged in Python, as outbox rows
    in flight are)."""
    if limit is None:
        return Listing(rows)
    return Listing(rows[:limit], max(0, len(rows) - limit))
