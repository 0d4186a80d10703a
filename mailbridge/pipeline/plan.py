"""What filing needs to know about a channel, as plain data built by the services layer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class ChannelPlan:
    """What filing needs to know about a channel, as plain data."""

    name: str
    mode: str = "tickets"
    default_queue: str = "general"
    routes: tuple[tuple[str, tuple[str, ...]], ...] = ()
    own_addresses: tuple[str, ...] = ()
    owner: tuple[str, ...] = ()  # engagements: the mailbox owner's addresses
    window_start: datetime | None = None  # engagements: nothing older counts
