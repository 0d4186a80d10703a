"""Sales mode over Microsoft 365 (Halo's sales mailboxes): a delegated service account reads
each agent's mailbox, filed by that agent's own settings (agent, matching, match_to), against
the local HTTPS Graph fake; the mailboxes stay exactly as they were. Per-mailbox keys fall
back to the channel's; bad per-mailbox values are one line each."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from conftest import m365_config

from mailbridge.config.load import validate
from mailbridge.connectors.graph.http import DELEGATED_HINTS
from mailbridge.errors import ConfigError
from mailbridge.pipeline.plan import SalesRules
from mailbridge.services.connectors import plan_for

SERVICE = "svc@contoso.com"
ALICE, BOB, CAROL = "alice@contoso.com", "bob@contoso.com", "carol@contoso.com"
NOW = datetime.now(UTC)
AGENTS = [
    {"address": ALICE, "agent": "Alice", "matching": True, "match_to": "opportunities"},
    {"address": BOB, "agent": "Bob", "matching": False},
    {"address": CAROL, "agent": "Carol", "match_to": "projects"},  # matching: the channel's
]
DENIED_HINT = DELEGATED_HINTS["ErrorAccessDenied"]  # names Mail.Read.Shared and Full Access
SALES_KEYS = {"connected_at": (NOW - timedelta(days=1)).isoformat(),
              "import_sent_items": True, "hide_email_chain": True}


def mail(sender: str, to: str, subject: str, body: str, mid: str,
         when: datetime = NOW - timedelta(hours=1)) -> bytes:
    return (f"From: {sender}\nTo: {to}\nSubject: {subject}\nMessage-ID: <{mid}@s.test>\n"
            f"Date: {format_datetime(when)}\n\n{body}\n").encode()


def ok(result):
    assert result.exit_code == 0, result.output
    return result


def one_error(result, code: int = 2) -> str:
    """The exit code, and exactly one error line (a remedy may follow on its own line)."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    [line] = [x for x in result.stderr.splitlines() if x.startswith("mailbridge: error:")]
    return line


def as_json(mb, *args):
    return json.loads(ok(mb(*args, "--format", "json")).stdout)


def texts(mb, opportunity: int) -> list[tuple[str, str, str]]:
    shown = as_json(mb, "opportunities", "show", str(opportunity))
    return sorted((m["how"], m["from"], m["text"]) for m in shown["messages"])


def inbox(mb, agent: str) -> list[tuple[str, str]]:
    return sorted((i["from"], i["subject"]) for i in as_json(mb, "inbox", "list", "--agent",
                                                               agent))


def counts(mb) -> dict[str, int]:
    return {t: mb.value(f"SELECT count(*) FROM {t}")
            for t in ("messages", "opportunities", "opportunity_messages", "inbox_items")}


def service_account(graph) -> None:
    """Halo: a service account without a mailbox of its own, granted each agent's."""
    for box in (ALICE, BOB, CAROL):
        graph.add_mailbox(box)
    graph.delegations[SERVICE] = {ALICE, BOB, CAROL}
    graph.approve_device_as = SERVICE


def deliver_script(graph) -> dict[str, tuple[str, str, bool]]:
    """The scripted mail; returns each message's id -> (mailbox, folder, isRead) as
    delivered."""
    script = [
        # Alice: matching on, opportunities
        (ALICE, mail("dan@acme.test", ALICE, "Re: Printer fleet renewal",
                     "Yes, go ahead.\n\nOn Mon, Alice wrote:\n> our offer", "a1"), "inbox", True),
        (ALICE, mail(ALICE, "dan@acme.test", "AW: Printer fleet renewal", "Offer attached.",
                     "a2"), "sentitems", True),
        (ALICE, mail("zed@zeta.test", ALICE, "SV: Team offsite", "Friday?", "a3"), "inbox",
         False),  # its opportunity's type is excluded: a new one is opened
        (ALICE, mail("eve@beta.test", ALICE, "Re: Old deal", "Still open?", "a4"), "inbox",
         False),  # its opportunity is closed: a new one is opened
        (ALICE, mail(BOB, ALICE, "Lunch?", "At noon.", "a5"), "inbox", False),  # two agents
        (ALICE, mail("fay@gamma.test", ALICE, "RE: Rollout", "Dates?", "a6"), "inbox", False),
        # Bob: matching off, so everything waits in his My Inbox
        (BOB, mail("dan@acme.test", BOB, "Re: Printer fleet renewal", "Call me.", "b1"),
         "inbox", False),
        (BOB, mail("new@delta.test", BOB, "Question about pricing", "How much?", "b2"),
         "inbox", True),
        (BOB, mail(BOB, "dan@acme.test", "Re: Toner", "Sent by Bob.", "b3"), "sentitems",
         True),
        # Carol: matched to projects
        (CAROL, mail("fay@gamma.test", CAROL, "Fwd: Rollout", "Schedule attached.", "c1"),
         "inbox", False),
        (CAROL, mail("gus@eta.test", CAROL, "Kickoff", "When do we start?", "c2"), "inbox",
         False),
        (CAROL, mail(CAROL, ALICE, "Handover", "Yours now.", "c3"), "sentitems", True),
    ]
    delivered = {graph.deliver(box, raw, folder=folder, is_read=is_read): (box, folder, is_read)
                 for box, raw, folder, is_read in script}
    before = NOW - timedelta(days=3)  # received before the channel was connected
    old = graph.deliver(ALICE, mail("old@acme.test", ALICE, "Re: Printer fleet renewal",
                                    "Before.", "a7", when=before), received=before)
    delivered[old] = (ALICE, "inbox", False)
    return delivered


def test_three_agent_mailboxes_land_as_their_rules_say(mb, graph):
    service_account(graph)
    folders = {box: {name: graph.mailboxes[box].folder_id(name) for name in
                     ("inbox", "sentitems")} for box in (ALICE, BOB, CAROL)}
    delivered = deliver_script(graph)
    m365_config(mb, graph, AGENTS, mode="sales", auth="delegated", channel_keys=SALES_KEYS)
    ok(mb("clients", "add", "ACME"))
    ok(mb("contacts", "add", "dan@acme.test", "--client", "ACME", "--create"))
    ok(mb("opportunities", "add", "--summary", "Printer fleet renewal", "--contact",
          "dan@acme.test", "--client", "ACME"))  # 1
    ok(mb("opportunities", "types", "add", "internal", "--exclude-from-matching"))
    ok(mb("opportunities", "add", "--summary", "Team offsite", "--contact", "zed@zeta.test",
          "--type", "internal"))  # 2
    ok(mb("opportunities", "add", "--summary", "Old deal", "--contact", "eve@beta.test"))  # 3
    ok(mb("opportunities", "close", "3"))
    ok(mb("opportunities", "add", "--summary", "Rollout", "--contact", "fay@gamma.test",
          "--project"))  # 4
    ok(mb("opportunities", "add", "--summary", "Rollout", "--contact", "fay@gamma.test"))  # 5

    login = ok(mb("auth", "login", "contoso"))
    assert f"signed in as {SERVICE}" in login.stderr
    token = next(iter(graph.tokens.values()))
    assert {s.rsplit("/", 1)[-1] for s in token.scopes} == {
        "Mail.Read.Shared", "Mail.Send.Shared", "openid", "profile",
        "offline_access"}  # others' mail: read only, and sent as its owner
    first = ok(mb("sync", "-v"))
    assert "opened a new opportunity" in first.stderr
    assert "support: 10 new, 0 already stored, 2 not copied" in first.stderr

    # Alice: matched by sender or (sent mail) recipient, reply prefixes cut, chain hidden
    assert texts(mb, 1) == [("matched", "alice@contoso.com", "Offer attached.\n"),
                            ("matched", "dan@acme.test", "Yes, go ahead.\n")]
    assert texts(mb, 2) == [] and texts(mb, 3) == []  # excluded type, closed
    assert texts(mb, 5) == [("matched", "fay@gamma.test", "Dates?\n")]  # the opportunity
    # Carol: the project with the same summary, not the opportunity
    assert texts(mb, 4) == [("matched", "fay@gamma.test", "Schedule attached.\n")]
    opened = {(o["summary"], o["project"]): o for o in as_json(mb, "opportunities", "list")
              if o["id"] > 5}  # 1-5 were added by hand
    assert {key: (o["agent"], o["contact_email"]) for key, o in opened.items()} == {
        ("Team offsite", False): ("Alice", "zed@zeta.test"),
        ("Old deal", False): ("Alice", "eve@beta.test"),
        ("Kickoff", True): ("Carol", "gus@eta.test")}
    assert texts(mb, opened[("Kickoff", True)]["id"]) == [
        ("opened", "gus@eta.test", "When do we start?\n")]
    # Bob: matching off, so even the mail that would match waits for him
    assert inbox(mb, "Bob") == [(BOB, "Re: Toner"), ("dan@acme.test", "Re: Printer fleet renewal"),
                                ("new@delta.test", "Question about pricing")]
    assert inbox(mb, "Alice") == [] and inbox(mb, "Carol") == []
    stored = counts(mb)
    # 13 delivered: Bob's lunch mail and Carol's handover (between agents) and the mail from
    # before the channel was connected are not copied
    assert stored == {"messages": 10, "opportunities": 8, "opportunity_messages": 7,
                      "inbox_items": 3}

    again = ok(mb("sync"))  # a second run adds nothing
    assert again.stderr == "support: 0 new, 0 already stored\n"
    assert counts(mb) == stored

    # the mailboxes are exactly as delivered: nothing marked read, moved or deleted
    after = {mid: (box, m.folder, m.is_read) for box in (ALICE, BOB, CAROL)
             for mid, m in graph.mailboxes[box].messages.items()}
    assert after == {mid: (box, folders[box][folder], is_read)
                     for mid, (box, folder, is_read) in delivered.items()}
    changes = [(m, p) for m, p in graph.log if m != "GET" and not p.endswith(
        ("/oauth2/v2.0/token", "/oauth2/v2.0/devicecode"))]
    assert changes and set(changes) == {("POST", "/v1.0/$batch")}
    assert {m for m, _ in graph.batched} == {"GET"}

    # My Inbox actions, on Bob's mail
    items = {i["subject"]: i["id"] for i in as_json(mb, "inbox", "list", "--agent", "Bob")}
    ok(mb("inbox", "assign", str(items["Re: Printer fleet renewal"]), "--opportunity", "1"))
    assert ("assigned", "dan@acme.test", "Call me.\n") in texts(mb, 1)
    made = ok(mb("inbox", "new-opportunity", str(items["Question about pricing"])))
    new = as_json(mb, "opportunities", "show", made.stderr.split("#")[-1].strip())
    assert (new["summary"], new["contact_email"], new["agent"], new["details"]) == (
        "Question about pricing", "new@delta.test", "Bob", "How much?\n")
    noted = ok(mb("inbox", "note", str(items["Re: Toner"])))
    assert "CRM note of ACME" in noted.stderr  # Bob's sent mail: by its recipient's client
    assert mb.query("SELECT n.client, m.subject, m.from_email FROM crm_notes n JOIN "
                    "messages m ON m.id = n.message") == [("ACME", "Re: Toner", BOB)]
    assert inbox(mb, "Bob") == []

    # a bad ID and a missing admin right: one line, non-zero exit
    missing = one_error(mb("inbox", "assign", str(items["Re: Toner"]), "--opportunity", "1"))
    assert f"no open My Inbox item #{items['Re: Toner']}" in missing
    graph.deliver(BOB, mail("spam@nowhere.test", BOB, "Win big", "!", "b4"))
    ok(mb("sync"))
    [spam] = as_json(mb, "inbox", "list", "--agent", "Bob")
    ok(mb("agents", "add", "Bob", "--email", BOB))
    refused = mb("inbox", "delete", str(spam["id"]), "--as", "Bob")
    assert "Bob is not an administrator" in one_error(refused) and "--admin" in refused.stderr
    assert "no opportunity #99" in one_error(mb("inbox", "assign", str(spam["id"]),
                                                "--opportunity", "99"))
    assert "no opportunity #42" in one_error(mb("opportunities", "show", "42"))
    ok(mb("agents", "set", "Bob", "--admin"))
    ok(mb("inbox", "delete", str(spam["id"]), "--as", "Bob"))
    assert inbox(mb, "Bob") == []


def test_plain_mail_read_cannot_reach_another_users_mailbox(mb, graph):
    """One mailbox, read by a service account: the app asked for plain Mail.Read (a
    single-mailbox user's sign-in), so Graph refuses even with the mailbox delegated, and the
    one-line error names Mail.Read.Shared; reading a second mailbox asks for the .Shared one."""
    service_account(graph)
    graph.deliver(ALICE, mail("dan@acme.test", ALICE, "Hello", "Hi.", "p1"))
    m365_config(mb, graph, [ALICE], mode="engagements", auth="delegated",
                channel_keys={"connected_at": SALES_KEYS["connected_at"]})
    ok(mb("clients", "add", "ACME"))
    ok(mb("contacts", "add", "dan@acme.test", "--client", "ACME", "--create"))
    ok(mb("auth", "login", "contoso"))
    refused = mb("sync")
    assert refused.exit_code == 4, refused.output
    assert "Mail.Read.Shared" in DENIED_HINT and "Full Access" in DENIED_HINT
    assert refused.stderr.splitlines() == [
        "mailbridge: support: failed: channel support: ErrorAccessDenied: Access is denied. "
        "Check credentials and try again.",
        "mailbridge: hint: " + DENIED_HINT]

    m365_config(mb, graph, [ALICE, BOB], mode="engagements", auth="delegated",
                channel_keys={"connected_at": SALES_KEYS["connected_at"]})
    ok(mb("auth", "login", "contoso"))  # the new permission needs a new sign-in
    ok(mb("sync"))
    assert len(as_json(mb, "engagements", "list")) == 1


def test_an_agent_who_has_not_shared_the_mailbox_fails_alone(mb, graph):
    service_account(graph)
    graph.delegations[SERVICE].discard(CAROL)
    graph.deliver(ALICE, mail("new@delta.test", ALICE, "Hello", "Hi.", "n1"))
    m365_config(mb, graph, AGENTS, mode="sales", auth="delegated", channel_keys=SALES_KEYS)
    ok(mb("auth", "login", "contoso"))
    out = mb("sync")
    assert out.exit_code == 4
    [line] = [x for x in out.stderr.splitlines() if CAROL in x]
    assert line.endswith(f"{CAROL}: channel support: ErrorAccessDenied: Access is denied. "
                         f"Check credentials and try again. ({DENIED_HINT})")
    assert [o["summary"] for o in as_json(mb, "opportunities", "list")] == ["Hello"]


def config(mailboxes: list, **channel) -> dict:
    return {"m365": [{"name": "contoso", "tenant_id": "t", "client_id": "c",
                      "auth": "delegated"}],
            "channel": [{"name": "sales", "mode": "sales", **channel,
                         "incoming": {"type": "m365", "app": "contoso",
                                      "mailboxes": mailboxes}}]}


def test_per_mailbox_keys_fall_back_to_the_channels():
    loaded = validate(config([
        {"address": "Alice@contoso.com", "agent": "Alice", "matching": False},
        {"address": BOB, "match_to": "opportunities"},
        CAROL,
    ], agent="Team", matching=True, match_to="projects", matching_type="domain",
        import_sent_items=True), Path("c.toml"))
    plan = plan_for(loaded.require("sales"))
    channel = SalesRules("Team", True, True, "domain", True, False)
    assert plan.sales == channel
    assert plan.sales_for(ALICE) == SalesRules("Alice", False, True, "domain", True, False)
    assert plan.sales_for(BOB) == SalesRules("Team", True, False, "domain", True, False)
    assert plan.sales_for(CAROL) == channel
    assert plan.sales_for("someone@else.test") == channel
    assert plan.owner == (ALICE, BOB, CAROL)  # mail between them is not sales mail
    # no agent anywhere: each mailbox's address keeps its own My Inbox apart
    unnamed = plan_for(validate(config([ALICE, BOB]), Path("c.toml")).require("sales"))
    assert [unnamed.sales_for(b).agent for b in (ALICE, BOB)] == [ALICE, BOB]


def test_delegated_permissions_follow_the_mailboxes_read():
    def asked(mailboxes: list, mode: str = "sales") -> tuple[str, ...]:
        data = config(mailboxes)
        data["channel"][0]["mode"] = mode
        return validate(data, Path("c.toml")).m365[0]["permissions"]

    # sales: a service account reads each mailbox and sends as it (`opportunities reply`)
    assert asked([ALICE, BOB]) == ("Mail.Read.Shared", "Mail.Send.Shared")
    assert asked([ALICE]) == ("Mail.Read.Shared", "Mail.Send.Shared")
    assert asked([ALICE], "engagements") == ("Mail.Read",)  # ClientSuccess: one's own
    assert asked([ALICE, BOB], "tickets") == ("Mail.ReadWrite.Shared",)



def test_sending_counts_and_shared_overrides_the_guess():
    def asked(mailboxes: list, outgoing: str | None = None, shared: bool | None = None
              ) -> tuple[str, ...]:
        data = config(mailboxes)
        data["channel"][0]["mode"] = "tickets"
        if outgoing:
            data["channel"][0]["outgoing"] = {"type": "m365", "app": "contoso",
                                              "mailbox": outgoing}
        if shared is not None:
            data["m365"][0]["shared"] = shared
        return validate(data, Path("c.toml")).m365[0]["permissions"]

    assert asked([ALICE], ALICE) == ("Mail.ReadWrite", "Mail.Send")  # a user's own mailbox
    assert asked([ALICE], BOB) == ("Mail.ReadWrite.Shared", "Mail.Send.Shared")
    assert asked([ALICE], ALICE, shared=True) == ("Mail.ReadWrite.Shared", "Mail.Send.Shared")
    assert asked([ALICE, BOB], shared=False) == ("Mail.ReadWrite",)


@pytest.mark.parametrize(("entry", "problem"), [
    ({"address": ALICE, "match_to": "tasks"},
     'entry 1 (match_to): must be one of "opportunities", "projects"'),
    ({"address": ALICE, "matching": "yes"}, "entry 1 (matching): must be true or false"),
    ({"address": ALICE, "agent": 7}, "entry 1 (agent): must be a string"),
    ({"address": ALICE, "agents": "Alice"},
     'entry 1: unknown key agents; did you mean "agent"?'),
])
def test_bad_per_mailbox_values_are_one_line(entry, problem):
    with pytest.raises(ConfigError) as info:
        validate(config([entry]), Path("c.toml"))
    assert info.value.problems == [f"c.toml: channel.sales.incoming.mailboxes: {problem}"]


def test_a_bad_per_mailbox_value_through_the_cli(mb, graph):
    m365_config(mb, graph, [{"address": ALICE, "match_to": "tasks"}], mode="sales",
                auth="delegated")
    line = one_error(mb("sync"))
    assert line.endswith('channel.support.incoming.mailboxes: entry 1 (match_to): must be one '
                         'of "opportunities", "projects"')
