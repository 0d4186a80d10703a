"""Is a channel healthy? Pure rules over facts the store keeps, shared by `status`, `doctor`
and the alerts `run` raises, so all three always agree."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

QUIET, FAILING, UNSENT = "quiet", "failing", "unsent"
NEEDS_A_PERSON = ("failed", "unknown")  # outbox states never sent again by themselves


@dataclass(frozen=True)
class UnsentMail:
    """An outbox row whose last attempt did not go out."""
    row: int
    state: str  # pending (tried again at the next sync), failed or unknown
    attempts: int
    error: str | None


@dataclass(frozen=True)
class ChannelFacts:
    channel: str
    enabled: bool
    last_message: datetime | None  # newest message stored from this channel
    watching_since: datetime | None  # first sync of the channel: the quiet clock's start
    failures: int  # consecutive failed syncs, newest first
    last_error: str | None
    unsent: tuple[UnsentMail, ...] = ()


@dataclass(frozen=True)
class Condition:
    channel: str
    kind: str  # QUIET | FAILING
    detail: str


def conditions(facts: ChannelFacts, no_messages_hours: float, after_failures: int,
               now: datetime) -> list[Condition]:
    """What is wrong with a channel now; empty when it is healthy (or disabled). Its mail
    is *unsent* when a row needs a person (failed, or unknown: it may have gone out) or has
    failed `after_failures` attempts in a row, the rule for syncs (one refusal, such as
    greylisting, is tried again and is no alarm yet)."""
    if not facts.enabled:
        return []
    found = []
    if facts.failures >= after_failures:
        found.append(Condition(facts.channel, FAILING,
                               f"{facts.failures} syncs in a row failed; last error: "
                               f"{facts.last_error or 'unknown'}"))
    unsent = _unsent(facts.unsent, after_failures)
    if unsent:
        found.append(Condition(facts.channel, UNSENT, unsent))
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


def _unsent(rows: tuple[UnsentMail, ...], after_failures: int) -> str | None:
    stuck = [r for r in rows if r.state in NEEDS_A_PERSON]
    retried = [r for r in rows if r.state not in NEEDS_A_PERSON and r.attempts >= after_failures]
    said = []
    if stuck:
        said.append(f"{len(stuck)} outgoing mail{'s' if len(stuck) > 1 else ''} failed or may "
                    "not have gone out: see `mailbridge outbox list`, then retry or cancel")
    if retried:
        worst = max(retried, key=lambda r: r.attempts)
        said.append(f"outbox #{worst.row} not sent after {worst.attempts} attempts: "
                    f"{worst.error or 'unknown'}")
    return "; ".join(said) or None


def _hours(span: timedelta) -> str:
    hours = span.total_seconds() / 3600
    return f"{hours:.1f} h" if hours >= 1 else f"{span.total_seconds() / 60:.0f} min"
