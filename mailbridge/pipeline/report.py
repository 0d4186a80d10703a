"""How the pipeline tells its caller what happened, without knowing about terminals."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from mailbridge.domain.source import SourceRef

# Outcomes of one fetched item
NEW_TICKET = "new_ticket"
THREADED = "threaded"
NO_TICKET = "no_ticket"  # stored, but not filed: our own mail coming back
UNPARSED = "unparsed"  # stored raw with its parse error
DUPLICATE = "duplicate"  # same message already stored (fingerprint)
SEEN = "seen"  # this very item was ledgered by an earlier run
MATCHED = "matched"  # sales: added to an open opportunity or project
OPENED = "opened"  # sales: opened a new opportunity
IN_INBOX = "inbox"  # sales: kept in the agent's My Inbox for manual handling
ENGAGED = "engaged"  # engagements: stored as an engagement with its matched contacts
IGNORED = "ignored"  # engagements: no contact and owner on it, or arrived outside the window
FAILED = "failed"  # could not be read from the source; not acked, retried next run


@dataclass(frozen=True)
class Outcome:
    ref: SourceRef
    kind: str
    message: int | None = None
    ticket: int | None = None
    subject: str = ""
    detail: str = ""


@dataclass
class Counts:
    fetched: int = 0
    stored: int = 0
    duplicates: int = 0
    failed: int = 0
    unparsed: int = 0
    ignored: int = 0
    errors: list[str] = field(default_factory=list)
    stopped: bool = False  # asked to stop between batches; the rest is left for next time

    def add(self, outcome: Outcome) -> None:
        self.fetched += 1
        if outcome.kind in (NEW_TICKET, THREADED, NO_TICKET, UNPARSED, ENGAGED, MATCHED,
                            OPENED, IN_INBOX):
            self.stored += 1
        if outcome.kind in (DUPLICATE, SEEN):
            self.duplicates += 1
        if outcome.kind == IGNORED:
            self.ignored += 1
        if outcome.kind == UNPARSED:
            self.unparsed += 1
        if outcome.kind == FAILED:
            self.failed += 1
            self.errors.append(outcome.detail)

    def as_row(self) -> dict[str, int]:
        return {"fetched": self.fetched, "stored": self.stored, "duplicates": self.duplicates,
                "failed": self.failed + self.unparsed}


class Reporter(Protocol):
    def item(self, channel: str, outcome: Outcome, size: int) -> None: ...


class NullReporter:
    def item(self, channel: str, outcome: Outcome, size: int) -> None:
        pass
