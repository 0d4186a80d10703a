"""Queues (Agent Desktop routing): listing them with their ticket counts."""

from __future__ import annotations

from typing import Any

from mailbridge.config.model import Config
from mailbridge.store import tickets
from mailbridge.store.session import exists, reading

COLUMNS = tickets.QUEUE_COLUMNS  # what `queues list` shows, in order


def list_queues(config: Config) -> list[dict[str, Any]]:
    """Queues in the store, plus every queue the config routes to that has no tickets yet."""
    found: dict[str, dict[str, Any]] = {}
    if exists(config.store):
        with reading(config.store) as db:
            found = {row["queue"]: row for row in tickets.queue_counts(db)}
    for channel in config.channels:
        for name in (channel.default_queue, *(r.queue for r in channel.routes)):
            found.setdefault(name, dict.fromkeys(tickets.QUEUE_COLUMNS, 0) | {"queue": name})
    return sorted(found.values(), key=lambda row: row["queue"])
