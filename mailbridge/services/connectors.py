"""Turn a channel's config into a connector, resolving its secrets only now."""

from __future__ import annotations

from mailbridge.config.model import Channel
from mailbridge.connectors.base import Fetcher
from mailbridge.connectors.drop import DropFetcher
from mailbridge.errors import NotSupportedError
from mailbridge.pipeline.tickets import ChannelPlan


def build_fetcher(channel: Channel) -> Fetcher:
    kind = channel.incoming["type"]
    if kind == "drop":
        return DropFetcher(channel.name, channel.spool)
    raise NotSupportedError(
        f"channel {channel.name}: incoming type \"{kind}\" is not available in this version yet",
        "use a forwarding drop (type = \"drop\") until it lands",
    )


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
