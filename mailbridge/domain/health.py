"""Is a channel healthy? Pure rules over facts the store keeps, shared by `status`, `doctor`
and the alerts `run` raises, so all three always agree."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

QUIET, FAILING = "quiet", "failing"


@dataclass(frozen=True)
class ChannelFacts:
    channel: str
    enabled: bool
    last_message: datetime | None  # newest message stored from this channel
    watching_since: datetime | None  # first sync of the channel: the quiet clock's start
    failures: int  # consecutive failed syncs, newest first
    last_error: str | None


@dataclass(frozen=True)
class Condition:
    channel: str
    kind: str  # QUIET | FAILING
    detail: str


def conditions(facts: ChannelFacts, no_messages_hours: float, after_failures: int,
               now: datetime) -> list[Condition]:
    """What is wrong with a channel now; empty when it is healthy (or disabled)."""
    if not facts.enabled:
        return []
    found = []
    if facts.failures >= after_failures:
        found.append(Condition(facts.channel, FAILING,
                               f"{facts.failures} syncs in a row failed; last error: "
                               f"{facts.last_error or 'unknown'}"))
    since = facts.last_message or facts.watching_since
    if no_messages_hours > 0 and since is not None:
        silent = now - since
        if silent >= timedelta(hours=no_messages_hours):
            what = "no messages since " if facts.last_message else "no messages at all since "
            found.append(Condition(facts.channel, QUIET,
                                   f"{what}{since.isoformat(timespec='seconds')} "
                                   f"({_hours(silent)}; no_messages_hours = "
                                   f"{no_messages_hours:g})"))
    return found


def _hours(span: timedelta) -> str:
    hours = span.total_seconds() / 3600
    return f"{hours:.1f} h" if hours >= 1 else f"{span.total_seconds() / 60:.0f} min"
