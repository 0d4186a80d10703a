"""Queues (Agent Desktop routing): listing them with counts, moving a ticket between them."""

from __future__ import annotations

from typing import Any

from mailbridge.config.model import Config
from mailbridge.errors import NotFoundError
from mailbridge.store import tickets
from mailbridge.store.db import open_store, translate_errors
from mailbridge.store.session import write_transaction


def list_queues(config: Config) -> list[dict[str, Any]]:
    """Queues in the store, plus every queue the config routes to that has no tickets yet."""
    found: dict[str, dict[str, Any]] = {}
    if config.store_path.exists():
        db = open_store(config.store_path, readonly=True)
        try:
            with translate_errors(config.store_path):
                found = {row["queue"]: row for row in tickets.queue_counts(db)}
        finally:
            db.close()
    for channel in config.channels:
        for name in (channel.default_queue, *(r.queue for r in channel.routes)):
            found.setdefault(name, {"queue": name, "open": 0, "total": 0})
    return sorted(found.values(), key=lambda row: row["queue"])


def move_ticket(config: Config, ticket: int, queue: str) -> str:
    with write_transaction(config.store_path) as db:
        previous = tickets.move(db, ticket, queue)
    if previous is None:
        raise NotFoundError(f"no ticket #{ticket}", "see `mailbridge tickets list`")
    return previous
