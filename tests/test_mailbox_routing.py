"""Agent Desktop sets routing per email account: "Default queue: this is the queue all emails
from this email account will go to, unless it meets the below criteria" and "Additional
routing … keywords that are included in the subject". A Microsoft 365 channel's mailboxes
take `queue` and `routes` of their own, falling back to the channel's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import m365_config, message

from mailbridge.config.load import validate
from mailbridge.errors import ConfigError
from mailbridge.pipeline.plan import ChannelPlan

CHANNEL_ROUTES = [{"queue": "tech", "keywords": ["error"]}]


def test_a_mailbox_s_routes_replace_the_channel_s_and_an_empty_list_means_none():
    plan = ChannelPlan("s", routes=(("tech", ("error",)),),
                       mailbox_routes=(("a@x.test", (("billing", ("invoice",)),)),
                                       ("c@x.test", ())))
    assert plan.routes_for("a@x.test") == (("billing", ("invoice",)),)
    assert plan.routes_for("b@x.test") == (("tech", ("error",)),)
    assert plan.routes_for("c@x.test") == ()


def test_mailbox_routes_are_checked_like_the_channel_s():
    def problems(routes):
        data = {"channel": [{"name": "s", "incoming": {"type": "m365", "app": "c", "mailboxes": [
            {"address": "a@x.test", "routes": routes}]}}],
            "m365": [{"name": "c", "tenant_id": "t", "client_id": "i"}]}
        with pytest.raises(ConfigError) as info:
            validate(data, Path("config.toml"))
        return info.value.problems

    assert problems([{"queue": "billing"}]) == [
        "config.toml: channel.s.incoming.mailboxes: entry 1 (routes): route 1: keywords is "
        "required"]
    assert problems([{"queue": "Bad Queue", "keywords": ["x"]}])[0].endswith(
        "route 1 (queue): must be lowercase letters, digits, '-' or '_' (at most 63)")
    assert problems("billing")[0].endswith("must be a list of { queue = …, keywords = […] } "
                                           "tables")


def test_each_microsoft_365_mailbox_routes_by_its_own_rules(mb, graph):
    subject = "Invoice error"
    for i, box in enumerate(("a", "b", "c")):
        graph.deliver(f"{box}@contoso.com", message(subject, message_id=f"{i}@customer.example"))
    m365_config(mb, graph, [
        {"address": "a@contoso.com", "routes": [{"queue": "billing", "keywords": ["invoice"]}]},
        "b@contoso.com",  # no routes of its own: the channel's
        {"address": "c@contoso.com", "queue": "sales", "routes": []},  # no routing at all
    ], channel_keys={"routes": CHANNEL_ROUTES})
    assert mb("sync").exit_code == 0
    rows = json.loads(mb("tickets", "list", "--format", "json").stdout)
    found = {}
    for row in rows:
        shown = json.loads(mb("tickets", "show", str(row["id"]), "--format", "json").stdout)
        found[shown["messages"][0]["message_id"]] = row["queue"]
    assert found == {"0@customer.example": "billing", "1@customer.example": "tech",
                     "2@customer.example": "sales"}
