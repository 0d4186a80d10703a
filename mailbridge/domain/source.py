"""Identity of a fetched item, shared by connectors (which make it) and the store (which
ledgers it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SourceRef:
    """Where one item came from; `key` is stable for that item in that mailbox folder."""

    mailbox: str
    folder: str
    key: str
