"""What every incoming connector offers the ingest pipeline.

A fetch has no side effects on the source; `ack` is called only after the batch is committed
and must be idempotent, because a crash between commit and ack repeats it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from mailbridge.domain.source import SourceRef

CursorLookup = Callable[[str, str], dict[str, Any] | None]


@dataclass(frozen=True)
class Fetched:
    ref: SourceRef
    raw: bytes | None
    error: str | None = None  # the item could not be read; it is reported and not acked


@dataclass(frozen=True)
class Batch:
    mailbox: str
    folder: str
    items: list[Fetched] = field(default_factory=list)
    cursor: dict[str, Any] | None = None  # saved with the batch's records, never before


class Fetcher(Protocol):
    def fetch(self, cursor_of: CursorLookup) -> Iterator[Batch]: ...

    def ack(self, refs: list[SourceRef]) -> None: ...

    def close(self) -> None: ...
