"""Engagements mode: keep a copy of mail between the owner and known contacts, inside the
window; never anything else (domain/engagement.py has the rules)."""

from __future__ import annotations

from datetime import UTC, datetime

from mailbridge.domain.engagement import Match, contacts_for, in_window, match
from mailbridge.domain.message import ParsedMessage
from mailbridge.pipeline.plan import ChannelPlan
from mailbridge.pipeline.report import ENGAGED
from mailbridge.store import engagements
from mailbridge.store.db import Store


def engagement_for(plan: ChannelPlan, parsed: ParsedMessage, arrived: datetime | None,
                   known_contacts: dict[str, tuple[str, datetime]]) -> Match | None:
    """`arrived`: the server's arrival time (None where the source has none: now)."""
    if plan.window_start is not None and not in_window(arrived, plan.window_start):
        return None
    usable = contacts_for(known_contacts, arrived or datetime.now(UTC), plan.window_hours)
    return match(parsed, plan.owner, usable)


def file_engagement(db: Store, plan: ChannelPlan, message: int, parsed: ParsedMessage,
                    arrived: datetime | None, found: Match) -> str:
    """The engagement's time is the server's arrival time, else the Date header (in UTC, so
    stored times compare as text)."""
    when = arrived or parsed.date
    engagements.record(db, plan.name, message, found.direction,
                       plan.owner[0] if plan.owner else "",
                       when.astimezone(UTC).isoformat(timespec="seconds") if when else None,
                       list(found.contacts))
    return ENGAGED
