"""A listing not yet read: the SELECT of a list command, run either for at most so many rows
(a bounded query: a terminal shows the first screen of 25 000 tickets in milliseconds) or
for how many rows it has in all (the "… N more" line)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from mailbridge.store.db import Store


class Query:
    def __init__(self, db: Store, sql: str, params: Sequence[Any],
                 row: Callable[[tuple], dict[str, Any]]) -> None:
        """`sql`: a SELECT with its ORDER BY; `row` turns one result row into a dict."""
        self.db, self.sql, self.params, self.row = db, sql, list(params), row

    def rows(self, limit: int | None = None) -> Iterator[dict[str, Any]]:
        """The rows in order, at most `limit`, read as they are iterated."""
        sql = self.sql if limit is None else f"{self.sql} LIMIT {int(limit)}"
        for found in self.db.execute(sql, self.params):
            yield self.row(found)

    def count(self) -> int:
        return self.db.execute(f"SELECT count(*) FROM ({self.sql}) AS listed",
                               self.params).fetchone()[0]


def where(conditions: Sequence[tuple[str, Any]]) -> tuple[str, list[Any]]:
    """` WHERE … AND …` and its parameters. A condition with one `?` applies when its value
    is given (neither None nor empty); one without, when its value is true."""
    given = [(sql, value) for sql, value in conditions
             if (value not in (None, "") if "?" in sql else value)]
    if not given:
        return "", []
    return (" WHERE " + " AND ".join(sql for sql, _ in given),
            [value for sql, value in given if "?" in sql])
