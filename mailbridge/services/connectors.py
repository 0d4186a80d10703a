"""Turn a channel's config into a connector, resolving its secrets only now."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from mailbridge.config import secrets
from mailbridge.config.model import Channel, route
from mailbridge.connectors.base import Fetcher
from mailbridge.connectors.drop import DropFetcher
from mailbridge.connectors.imap import ImapFetcher
from mailbridge.connectors.imap_probe import probe
from mailbridge.connectors.imap_session import DEFAULT_PORTS, ImapSettings
from mailbridge.domain.engagement import window_start
from mailbridge.errors import NotSupportedError, UsageError
from mailbridge.pipeline.plan import ChannelPlan, SalesRules


def build_fetcher(channel: Channel, plan: ChannelPlan | None = None) -> Fetcher:
    kind = channel.incoming["type"]
    if kind == "drop":
        return DropFetcher(channel.name, channel.spool)
    if kind == "imap":
        return ImapFetcher(channel.name,
                           imap_settings(channel, plan.window_start if plan else None))
    if kind == "m365":
        from mailbridge.services import m365  # MSAL and requests load only when used

        return m365.build_fetcher(channel, plan.window_start if plan else None)
    raise NotSupportedError(
        f"channel {channel.name}: incoming type \"{kind}\" is not available in this version yet",
        "use a forwarding drop (type = \"drop\") until it lands",
    )


def test_connection(channel: Channel) -> dict[str, Any]:
    """Check a channel's incoming connection without changing anything at the source."""
    kind = channel.incoming["type"]
    if kind == "drop":
        fetcher = DropFetcher(channel.name, channel.spool)
        return {"channel": channel.name, "type": kind, "spool": str(channel.spool),
                "waiting": fetcher.waiting()}
    if kind == "imap":
        return {"type": kind, **probe(imap_settings(channel), channel.name)}
    if kind == "m365":
        from mailbridge.services import m365

        return {"type": kind, **m365.test_mailboxes(channel)}
    build_fetcher(channel)  # raises NotSupportedError for what this version lacks
    raise AssertionError(kind)


def plan_for(channel: Channel, connected: datetime | None = None,
             now: datetime | None = None, contacts_added: Iterable[datetime] = ()
             ) -> ChannelPlan:
    """`connected`: when the channel started (engagements never reach back before it);
    `connected_at` from the config wins, else the caller's (the channel's first sync).
    `contacts_added`: when recent contacts were added (engagements look back further for
    mail a new contact brings in)."""
    window = None
    start = datetime.fromisoformat(channel.connected_at) if channel.connected_at else connected
    if channel.mode == "engagements":
        if not channel.owner_addresses:
            raise UsageError(f"channel {channel.name}: engagements need the mailbox owner's "
                             "address", "set owner = \"me@company.com\" for the channel")
        window = window_start(now or datetime.now(UTC), channel.window_hours, start,
                              contacts_added)
    sales, mailbox_sales = None, ()
    if channel.mode == "sales":  # a copy of everything since the channel was connected
        window = start
        sales = SalesRules(channel.agent, channel.matching, channel.match_to == "projects",
                           channel.matching_type, channel.import_sent_items,
                           channel.hide_email_chain)
        mailbox_sales = tuple((m["address"], mailbox_rules(sales, m)) for m in channel.mailboxes)
    return ChannelPlan(
        name=channel.name,
        mode=channel.mode,
        default_queue=channel.default_queue,
        routes=channel.routes,
        own_addresses=channel.own_addresses,
        owner=channel.owner_addresses,
        mailbox_queues=tuple((m["address"], m["queue"]) for m in channel.mailboxes
                             if m["queue"]),
        mailbox_routes=tuple((m["address"], tuple(route(r) for r in m["routes"]))
                             for m in channel.mailboxes if m.get("routes") is not None),
        window_start=window,
        window_hours=channel.window_hours,
        sales=sales,
        mailbox_sales=mailbox_sales,
    )


def mailbox_rules(channel_rules: SalesRules, mailbox: dict[str, Any]) -> SalesRules:
    """A Microsoft 365 mailbox's agent, matching and match_to, each the channel's where the
    mailbox leaves it out; with no agent named anywhere the mailbox's address stands in, so
    each agent of a shared channel keeps a My Inbox of their own."""
    agent, matching, match_to = (mailbox.get(k) for k in ("agent", "matching", "match_to"))
    return replace(
        channel_rules,
        agent=(channel_rules.agent or mailbox["address"]) if agent is None else agent,
        matching=channel_rules.matching if matching is None else matching,
        projects=channel_rules.projects if match_to is None else match_to == "projects",
    )


def imap_settings(channel: Channel, since: datetime | None = None) -> ImapSettings:
    cfg = channel.incoming
    folders = cfg["folders"]
    return ImapSettings(
        host=cfg["host"],
        port=cfg["port"] or DEFAULT_PORTS[cfg["security"]],
        security=cfg["security"],
        username=cfg["username"],
        secret=secrets.resolve(cfg["password"]),
        auth=cfg["auth"],
        folders=folders if folders == "*" else tuple(folders),
        import_read=cfg["import_read"],
        mark_seen=channel.mode == "tickets",  # engagements and sales only copy
        max_rescan=cfg["max_rescan"],
        max_message_mb=cfg["max_message_mb"],
        timeout=cfg["timeout"],
        ca_file=cfg["ca_file"],
        since=since,
        mode=channel.mode,
    )
