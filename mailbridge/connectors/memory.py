"""Messages handed over in memory: `mailbridge ingest` (one message on stdin) and tests."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

from mailbridge.connectors.base import Batch, Fetched, SourceState
from mailbridge.domain.source import SourceRef


class MemoryFetcher:
    def __init__(self, messages: list[bytes], mailbox: str = "stdin", folder: str = "-") -> None:
        self.mailbox, self.folder = mailbox, folder
        self.problems: list[str] = []  # a single-source connector fails whole
        self.items = [
            Fetched(SourceRef(mailbox, folder, hashlib.sha256(raw).hexdigest()), raw)
            for raw in messages
        ]
        self.acked: list[SourceRef] = []

    def fetch(self, state: SourceState) -> Iterator[Batch]:
        if self.items:
            yield Batch(self.mailbox, self.folder, list(self.items))

    def ack(self, refs: list[SourceRef]) -> None:
        self.acked.extend(r for r in refs if r not in self.acked)

    def close(self) -> None:
        pass
