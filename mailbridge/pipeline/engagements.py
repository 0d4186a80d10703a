"""Engagements mode: keep a copy of mail between the owner and known contacts, inside the
window; never anything else (domain/engagement.py has the rules)."""

from __future__ import annotations

from mailbridge.domain.engagement import Match, in_window, match
from mailbridge.domain.message import ParsedMessage
from mailbridge.pipeline.plan import ChannelPlan
from mailbridge.pipeline.report import ENGAGED
from mailbridge.store import engagements
from mailbridge.store.db import Store


def engagement_for(plan: ChannelPlan, parsed: ParsedMessage,
                   known_contacts: dict[str, str]) -> Match | None:
    if plan.window_start is not None and not in_window(parsed.date, plan.window_start):
        return None
    return match(parsed, plan.owner, known_contacts)


def file_engagement(db: Store, plan: ChannelPlan, message: int, parsed: ParsedMessage,
                    found: Match) -> str:
    engagements.record(db, plan.name, message, found.direction,
                       plan.owner[0] if plan.owner else "",
                       parsed.date.isoformat() if parsed.date else None, list(found.contacts))
    return ENGAGED
