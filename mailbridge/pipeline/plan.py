"""What filing needs to know about a channel, as plain data built by the services layer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from mailbridge.domain.routing import Route


@dataclass(frozen=True)
class SalesRules:
    agent: str = ""
    matching: bool = True
    projects: bool = False  # match to projects instead of opportunities
    matching_type: str = "address_and_subject"
    import_sent_items: bool = False
    hide_email_chain: bool = False


@dataclass(frozen=True)
class ChannelPlan:
    """What filing needs to know about a channel, as plain data."""

    name: str
    mode: str = "tickets"
    default_queue: str = "general"
    routes: tuple[Route, ...] = ()
    own_addresses: tuple[str, ...] = ()
    owner: tuple[str, ...] = ()  # engagements: the mailbox owner's addresses
    window_start: datetime | None = None  # engagements, sales: nothing that arrived earlier
    window_hours: float = 24.0  # engagements: how long after a message a new contact counts
    sales: SalesRules | None = None
    mailbox_queues: tuple[tuple[str, str], ...] = ()  # Microsoft 365: a mailbox's own queue
    # Microsoft 365: a mailbox's own keyword routes, in place of the channel's
    mailbox_routes: tuple[tuple[str, tuple[Route, ...]], ...] = ()
    mailbox_sales: tuple[tuple[str, SalesRules], ...] = ()  # Microsoft 365: an agent's rules

    def queue_for(self, mailbox: str) -> str:
        return dict(self.mailbox_queues).get(mailbox, self.default_queue)

    def routes_for(self, mailbox: str) -> tuple[Route, ...]:
        """Routing is set per email account (Agent Desktop): the mailbox's routes where it
        has any table of them (an empty one too), else the channel's."""
        return dict(self.mailbox_routes).get(mailbox, self.routes)

    def sales_for(self, mailbox: str) -> SalesRules | None:
        """The rules of the agent whose mailbox the mail came from, else the channel's."""
        return dict(self.mailbox_sales).get(mailbox, self.sales)
