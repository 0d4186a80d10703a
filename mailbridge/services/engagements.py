"""Reading engagements back: list with filters, show one with its message."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from mailbridge.config.model import Config
from mailbridge.errors import NotFoundError, UsageError
from mailbridge.store import engagements, messages
from mailbridge.store.session import exists, reading

_AGO_RE = re.compile(r"^(\d+)\s*([hdw])$")
_UNIT_HOURS = {"h": 1, "d": 24, "w": 24 * 7}


def since_cutoff(text: str | None, now: datetime | None = None) -> str | None:
    """`--since 7d` (or 12h, 2w, or an ISO date) as an ISO timestamp."""
    if not text:
        return None
    found = _AGO_RE.match(text.strip())
    if found:
        hours = int(found[1]) * _UNIT_HOURS[found[2]]
        return ((now or datetime.now(UTC)) - timedelta(hours=hours)).isoformat(
            timespec="seconds")
    try:
        return datetime.fromisoformat(text).isoformat()
    except ValueError:
        raise UsageError(f"--since {text!r} is not understood",
                         "use 12h, 7d, 2w or a date like 2026-11-01") from None


def list_engagements(config: Config, client: str | None, contact: str | None,
                     since: str | None, limit: int | None) -> list[dict[str, Any]]:
    if not exists(config.store):
        return []
    cutoff = since_cutoff(since)
    with reading(config.store) as db:
        return engagements.list_engagements(db, client, contact, cutoff, limit)


def show_engagement(config: Config, engagement: int) -> dict[str, Any]:
    missing = NotFoundError(f"no engagement #{engagement}", "see `mailbridge engagements list`")
    if not exists(config.store):
        raise missing
    with reading(config.store) as db:
        found = engagements.get(db, engagement)
        if found is None:
            raise missing
        found["message_details"] = messages.details(db, found["message"])
        return found
