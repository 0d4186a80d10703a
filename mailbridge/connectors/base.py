"""What every incoming connector offers the ingest pipeline, and how outgoing ones fail.

A fetch has no side effects on the source; `ack` is called only after the batch is committed
and must be idempotent, because a crash between commit and ack repeats it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from mailbridge.domain.source import SourceRef


class SourceState(Protocol):
    """What the store already knows about a source, asked for by a connector before it
    fetches (connectors never touch SQLite themselves)."""

    def cursor(self, mailbox: str, folder: str) -> dict[str, Any] | None: ...

    def known(self, mailbox: str, folder: str, keys: Iterable[str]) -> set[str]:
        """The subset of `keys` already committed to the ledger."""
        ...

    def stopping(self) -> bool:
        """True once the caller takes no more batches (`run` got SIGTERM): a connector that
        reads a batch piece by piece ends it early with the whole messages it has."""
        ...


@dataclass(frozen=True)
class Fetched:
    ref: SourceRef
    raw: bytes | None
    error: str | None = None  # the item could not be read; it is reported and not acked
    # When the server received it (or stored the sent copy): IMAP INTERNALDATE, Graph
    # receivedDateTime. None where the source has no such time (a drop folder).
    arrived: datetime | None = None


def too_large(size: int, limit_mb: int) -> str:
    """How a message over `incoming.max_message_mb` is reported: not fetched, not acked (so it
    stays unread for a person and is reported on every run)."""
    return f"message is {size / 1048576:.1f} MB, over incoming.max_message_mb ({limit_mb})"


@dataclass(frozen=True)
class Batch:
    mailbox: str
    folder: str
    items: list[Fetched] = field(default_factory=list)
    cursor: dict[str, Any] | None = None  # saved with the batch's records, never before


class Fetcher(Protocol):
    # What went wrong in part of the source without stopping the rest (one mailbox of
    # several): reported with the run, which then counts as a partial failure.
    problems: list[str]

    def fetch(self, state: SourceState) -> Iterator[Batch]: ...

    def ack(self, refs: list[SourceRef]) -> None: ...

    def close(self) -> None: ...


# What a sender's `send` raises (SMTP, sendmail, later Graph), so the outbox knows whether a
# message may have gone out: it must never send one twice.
class SendFailed(Exception):
    """The server refused the message; `permanent` for 5xx replies."""

    def __init__(self, text: str, permanent: bool) -> None:
        super().__init__(text)
        self.permanent = permanent


class SendUnknown(Exception):
    """The connection broke after the message was sent, before the server's answer."""
