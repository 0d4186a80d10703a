"""Reading engagements back: list with filters, show one with its message."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from mailbridge.config.model import Config
from mailbridge.domain.checks import DURATION_RE, duration, pick, require
from mailbridge.errors import NotFoundError, UsageError
from mailbridge.services.listing import Listing, listed
from mailbridge.store import engagements, messages, names
from mailbridge.store.session import exists, reading

AGO = duration("hdw", timedelta(days=36525))  # a hundred years back at most


def since_cutoff(text: str | None, now: datetime | None = None) -> str | None:
    """`--since 7d` (or 12h, 2w, or an ISO date) as an ISO timestamp."""
    if not text:
        return None
    if DURATION_RE.match(text.strip()):
        ago = require("--since", AGO, text)
        return ((now or datetime.now(UTC)) - ago).isoformat(timespec="seconds")
    try:
        return datetime.fromisoformat(text).isoformat()
    except ValueError:
        raise UsageError(f"--since {text!r} is not understood",
                         "use 12h, 7d, 2w or a date like 2026-11-01") from None


def list_engagements(config: Config, client: str | None, contact: str | None,
                     since: str | None, limit: int | None) -> Listing:
    cutoff = since_cutoff(since)
    if not exists(config.store):
        return Listing(())
    client, contact = engagement_filters(config, client, contact)
    return listed(config.store,
                  lambda db: engagements.list_engagements(db, client, contact, cutoff), limit)


def engagement_filters(config: Config, client: str | None, contact: str | None
                       ) -> tuple[str | None, str | None]:
    """The client and contact a filter names (the store exists); one that is not known is an
    error naming those that are."""
    with reading(config.store) as db:
        if client:
            client = pick("client", client, names.known(db, "client"),
                          "see `mailbridge clients list`")
        if contact:
            contact = pick("contact", contact, names.known(db, "contact"),
                           "see `mailbridge contacts list`")
    return client, contact


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
