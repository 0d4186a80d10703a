"""Turn a channel's config into a connector, resolving its secrets only now."""

from __future__ import annotations

from typing import Any

from mailbridge.config import secrets
from mailbridge.config.model import Channel
from mailbridge.connectors.base import Fetcher
from mailbridge.connectors.drop import DropFetcher
from mailbridge.connectors.imap import ImapFetcher
from mailbridge.connectors.imap_probe import probe
from mailbridge.connectors.imap_session import DEFAULT_PORTS, ImapSettings
from mailbridge.errors import NotSupportedError
from mailbridge.pipeline.tickets import ChannelPlan


def build_fetcher(channel: Channel) -> Fetcher:
    kind = channel.incoming["type"]
    if kind == "drop":
        return DropFetcher(channel.name, channel.spool)
    if kind == "imap":
        return ImapFetcher(channel.name, imap_settings(channel))
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
    build_fetcher(channel)  # raises NotSupportedError for what this version lacks
    raise AssertionError(kind)


def plan_for(channel: Channel) -> ChannelPlan:
    if channel.mode != "tickets":
        raise NotSupportedError(
            f"channel {channel.name}: mode \"{channel.mode}\" is not available in this version yet",
            "use mode = \"tickets\"",
        )
    return ChannelPlan(
        name=channel.name,
        mode=channel.mode,
        default_queue=channel.default_queue,
        routes=tuple((r.queue, r.keywords) for r in channel.routes),
        own_addresses=channel.own_addresses,
    )


def imap_settings(channel: Channel) -> ImapSettings:
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
    )
