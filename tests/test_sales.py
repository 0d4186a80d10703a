"""Sales mode: the pure matching rules, then scripted mail through a channel (a drop spool for
the many cases, a real Dovecot for "never modified"), and the My Inbox actions."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from conftest import drop

from mailbridge.domain.sales import (
    ADDRESS_AND_SUBJECT,
    DOMAIN,
    INBOX,
    NEW,
    UPDATE,
    Candidate,
    decide,
    normalized,
    without_chain,
)

CANDIDATES = [
    Candidate(1, "Printer fleet renewal", "bob@acme.test", "2026-11-20T10:00:00+00:00"),
    Candidate(2, "Support contract", "eve@acme.test", "2026-11-22T10:00:00+00:00"),
    Candidate(3, "Printer fleet renewal", "dan@beta.test", "2026-11-01T10:00:00+00:00"),
    Candidate(4, "Old thing", "zed@zeta.test", "2026-11-23T10:00:00+00:00", excluded=True),
]


def test_subjects_compare_without_prefixes_tokens_case_or_spacing():
    assert normalized("RE: AW:  printer   FLEET renewal [#12]") == "printer fleet renewal"
    assert normalized("SV: WG: Fwd: Printer fleet renewal") == "printer fleet renewal"


@pytest.mark.parametrize(("sender", "subject", "expected"), [
    ("bob@acme.test", "Re: Printer fleet renewal", (UPDATE, 1)),
    ("BOB@acme.test", "printer fleet renewal", (UPDATE, 1)),
    ("bob@acme.test", "Something else", (NEW, None)),  # Halo logs a new opportunity
    ("eve@acme.test", "Printer fleet renewal", (NEW, None)),  # address and subject both
    ("zed@zeta.test", "Old thing", (NEW, None)),  # excluded type never matches
])
def test_address_and_subject(sender, subject, expected):
    found = decide([sender], subject, CANDIDATES, True, ADDRESS_AND_SUBJECT, ["us.test"])
    assert (found.kind, found.opportunity) == expected


def test_domain_matching_takes_the_most_recently_updated_and_says_so():
    found = decide(["someone@acme.test"], "anything", CANDIDATES, True, DOMAIN, ["us.test"])
    assert (found.kind, found.opportunity, found.ambiguous) == (UPDATE, 2, (1,))
    assert decide(["x@nowhere.test"], "x", CANDIDATES, True, DOMAIN, []).kind == INBOX
    assert decide(["colleague@acme.test"], "x", CANDIDATES, True, DOMAIN,
                  ["acme.test"]).kind == INBOX  # the agent's own domain is ignored
    assert decide(["zed@zeta.test"], "x", CANDIDATES, True, DOMAIN, []).kind == INBOX


@pytest.mark.parametrize("matching_type", [ADDRESS_AND_SUBJECT, DOMAIN])
def test_an_answer_to_mail_of_an_opportunity_updates_it_first(matching_type):
    # another sender and subject; the nearest answered open opportunity wins
    found = decide(["new@else.test"], "Order", CANDIDATES, True, matching_type, [],
                   answers=[9, 4, 2, 1])  # 9 is not open, 4 is excluded
    assert (found.kind, found.opportunity) == (UPDATE, 2)
    assert decide(["bob@acme.test"], "Printer fleet renewal", CANDIDATES, False,
                  matching_type, [], answers=[2]).kind == INBOX  # matching off: My Inbox


def test_matching_off_keeps_everything_for_the_agent():
    assert decide(["bob@acme.test"], "Printer fleet renewal", CANDIDATES, False,
                  ADDRESS_AND_SUBJECT, []).kind == INBOX


def test_the_new_part_of_a_reply():
    assert without_chain("Yes, go ahead.\n\nOn Mon, 16 Nov 2026, Anna wrote:\n> offer\n") == \
        "Yes, go ahead.\n"
    assert without_chain("Fine.\n-----Original Message-----\nFrom: x\n") == "Fine.\n"
    assert without_chain("Fine.\n> quoted\n") == "Fine.\n"
    assert without_chain("No history.\n") == "No history.\n"


AGENT = "anna@us.test"
NOW = datetime.now(UTC)


def mail(sender: str, to: str, subject: str, body: str = "Hello.", when: datetime = NOW,
         mid: str | None = None) -> bytes:
    mid = mid or f"{abs(hash((sender, to, subject, body)))}@s.test"
    return (f"From: {sender}\nTo: {to}\nSubject: {subject}\nMessage-ID: <{mid}>\n"
            f"Date: {format_datetime(when)}\n\n{body}\n").encode()


def sales_channel(mb, **settings):
    return mb.drop_channel("sales", mode="sales", owner=AGENT, agent="Anna",
                           connected_at=(NOW - timedelta(hours=1)).isoformat(), **settings)


def opportunities(mb, *args):
    return json.loads(mb("opportunities", "list", *args, "--format", "json").stdout)


def test_mail_lands_as_the_rules_say_and_a_second_run_adds_nothing(mb):
    spool = sales_channel(mb, import_sent_items=True, hide_email_chain=True)
    assert mb("opportunities", "add", "--summary", "Printer fleet renewal", "--contact",
              "bob@acme.test", "--client", "ACME").exit_code == 0
    assert mb("opportunities", "types", "add", "internal", "--exclude-from-matching"
              ).exit_code == 0
    assert mb("opportunities", "add", "--summary", "Team offsite", "--contact",
              "zed@zeta.test", "--type", "internal").exit_code == 0
    drop(spool, mail("bob@acme.test", AGENT, "Re: Printer fleet renewal",
                     "Yes, go ahead.\n\nOn Mon, Anna wrote:\n> our offer"))
    drop(spool, mail(AGENT, "bob@acme.test", "RE: Printer fleet renewal", "Offer attached."))
    drop(spool, mail("bob@acme.test", AGENT, "Toner prices?", "How much?"))
    drop(spool, mail("zed@zeta.test", AGENT, "Team offsite", "Friday?"))
    # delivered now with a Date three days old (delayed in transit): it arrived after the
    # connection, and arrival decides
    drop(spool, mail("ed@echo.test", AGENT, "Late by days", when=NOW - timedelta(days=3)))
    two_days_ago = (NOW - timedelta(days=2)).timestamp()  # delivered into the spool then
    os.utime(drop(spool, mail("old@acme.test", AGENT, "Before we connected")),
             (two_days_ago, two_days_ago))
    result = mb("sync", "-v")
    assert result.exit_code == 0, result.stderr

    first = json.loads(mb("opportunities", "show", "1", "--format", "json").stdout)
    assert sorted((m["how"], m["text"]) for m in first["messages"]) == [
        ("matched", "Offer attached.\n"),  # sent mail, matched by its recipient
        ("matched", "Yes, go ahead.\n")]  # hide_email_chain: only the new part
    everything = opportunities(mb)
    # the excluded "Team offsite" is no candidate, so its mail opens a new one, as Halo does
    assert sorted(o["summary"] for o in everything) == [
        "Late by days", "Printer fleet renewal", "Team offsite", "Team offsite",
        "Toner prices?"]
    listed = {o["summary"]: o for o in everything}
    toner = listed["Toner prices?"]
    assert toner["contact_email"] == "bob@acme.test" and toner["agent"] == "Anna"
    inbox = json.loads(mb("inbox", "list", "--format", "json").stdout)
    assert [i["subject"] for i in inbox] == []  # address_and_subject opens new ones instead
    offsite = json.loads(mb("opportunities", "show", "2", "--format", "json").stdout)
    assert offsite["type"] == "internal" and offsite["messages"] == []
    assert "opened a new opportunity" in result.stderr

    again = mb("sync")
    assert again.exit_code == 0
    assert mb.value("SELECT count(*) FROM opportunity_messages") == 5


def test_matching_off_and_my_inbox_actions(mb):
    spool = sales_channel(mb, matching=False)
    assert mb("clients", "add", "ACME").exit_code == 0
    assert mb("contacts", "add", "bea@acme.test", "--client", "ACME", "--create").exit_code == 0
    assert mb("opportunities", "add", "--summary", "Deal", "--contact", "bob@acme.test"
              ).exit_code == 0
    for subject in ("Deal", "A question", "Thanks", "Spam-ish"):
        drop(spool, mail("bob@acme.test", AGENT, subject))
    assert mb("sync").exit_code == 0
    items = {i["subject"]: i["id"] for i in
             json.loads(mb("inbox", "list", "--agent", "Anna", "--format", "json").stdout)}
    assert set(items) == {"Deal", "A question", "Thanks", "Spam-ish"}

    assert mb("inbox", "assign", str(items["Deal"]), "--opportunity", "1").exit_code == 0
    opened = mb("inbox", "new-opportunity", str(items["A question"]))
    assert opened.exit_code == 0 and "new opportunity #2" in opened.stderr
    new = json.loads(mb("opportunities", "show", "2", "--format", "json").stdout)
    assert (new["summary"], new["contact_email"], new["details"]) == (
        "A question", "bob@acme.test", "Hello.\n")
    noted = mb("inbox", "note", str(items["Thanks"]))
    assert noted.exit_code == 0 and "CRM note of ACME" in noted.stderr  # suggested by domain
    assert mb("agents", "add", "Anna", "--email", AGENT, "--admin").exit_code == 0
    assert mb("inbox", "delete", str(items["Spam-ish"]), "--as", "Anna").exit_code == 0
    assert json.loads(mb("inbox", "list", "--format", "json").stdout) == []
    again = mb("inbox", "assign", str(items["Deal"]), "--opportunity", "1")
    assert again.exit_code == 2 and "no open My Inbox item" in again.stderr
    missing = mb("opportunities", "show", "99")
    assert missing.exit_code == 2 and "no opportunity #99" in missing.stderr
    deal = json.loads(mb("opportunities", "show", "1", "--format", "json").stdout)
    assert [m["how"] for m in deal["messages"]] == ["assigned"]


def test_an_opportunity_mail_opens_belongs_to_the_contacts_client(mb):
    """Its contact's client, else the client whose domain the contact's is: so a client's
    settings (its quotation mailbox) reach the opportunities mail opens for it."""
    spool = sales_channel(mb, matching=True)
    for name in ("ACME", "Beta"):
        assert mb("clients", "add", name).exit_code == 0
    assert mb("contacts", "add", "bob@acme.test", "--client", "ACME").exit_code == 0
    assert mb("clients", "set", "Beta", "--domain", "beta.test").exit_code == 0
    drop(spool, mail("bob@acme.test", AGENT, "Toner prices?"))
    drop(spool, mail("eve@beta.test", AGENT, "Ten laptops"))
    drop(spool, mail("sam@nowhere.test", AGENT, "A stranger asks"))
    assert mb("sync").exit_code == 0
    clients = {o["summary"]: o["client"] for o in opportunities(mb)}
    assert clients == {"Toner prices?": "ACME", "Ten laptops": "Beta", "A stranger asks": ""}


def test_closed_opportunities_and_projects(mb):
    spool = sales_channel(mb, match_to="projects")
    assert mb("opportunities", "add", "--summary", "Rollout", "--contact", "bob@acme.test",
              "--project").exit_code == 0
    assert mb("opportunities", "add", "--summary", "Rollout", "--contact", "bob@acme.test"
              ).exit_code == 0
    assert mb("opportunities", "close", "1").exit_code == 0
    drop(spool, mail("bob@acme.test", AGENT, "Re: Rollout"))
    assert mb("sync").exit_code == 0
    projects = opportunities(mb, "--projects")
    assert [(p["id"], p["summary"]) for p in projects] == [(3, "Rollout")]  # new project:
    # the closed project is no candidate, and the opportunity is not a project
    assert opportunities(mb, "--status", "closed")[0]["id"] == 1


def test_opportunities_import(mb, tmp_path):
    mb.drop_channel()
    csv_file = tmp_path / "opps.csv"
    csv_file.write_text("summary,contact,client,type,project\nDeal A,a@x.test,X,,no\n"
                        ",b@x.test,X,,\nDeal C,not-an-address,X,,\nRollout,c@x.test,X,,yes\n")
    result = mb("opportunities", "import", str(csv_file), "--format", "json")
    assert result.exit_code == 4
    assert [(r["line"], r["result"]) for r in json.loads(result.stdout)] == [
        (2, "added"), (3, "rejected"), (4, "rejected"), (5, "added")]
    assert [o["project"] for o in opportunities(mb)] == [False, True]


def imap_sales_channel(mb, imap_user, monkeypatch, **extra) -> str:
    """Anna's sales channel reading the Dovecot user's mailbox; returns her address."""
    monkeypatch.setenv("MB_SALES_PW", imap_user.password)
    owner = f"{imap_user.username}@us.test"
    mb.write_config([{
        "name": "sales", "mode": "sales", "owner": owner, "agent": "Anna",
        "connected_at": (NOW - timedelta(hours=1)).isoformat(),
        "incoming": {"type": "imap", "host": "127.0.0.1", "port": imap_user.port,
                     "security": "none", "username": imap_user.username,
                     "password": {"env": "MB_SALES_PW"}}, **extra}])
    return owner


def test_an_imap_sales_mailbox_is_never_modified(mb, dovecot, imap_user, monkeypatch):
    owner = imap_sales_channel(mb, imap_user, monkeypatch)
    assert mb("opportunities", "add", "--summary", "Deal", "--contact", "bob@acme.test"
              ).exit_code == 0
    dovecot.append(imap_user.username, imap_user.password,
                   [mail("bob@acme.test", owner, "Re: Deal", mid="d1@s.test"),
                    mail("new@acme.test", owner, "Hello", mid="d2@s.test")])
    client = dovecot.client(imap_user.username, imap_user.password)
    client.select_folder("INBOX", readonly=True)
    before = {u: d[b"FLAGS"] for u, d in client.fetch(client.search(["ALL"]), ["FLAGS"]).items()}
    assert mb("sync").exit_code == 0
    assert mb("sync").exit_code == 0  # nothing twice
    client.select_folder("INBOX", readonly=True)
    after = {u: d[b"FLAGS"] for u, d in client.fetch(client.search(["ALL"]), ["FLAGS"]).items()}
    client.logout()
    assert after == before and len(after) == 2  # not read, not moved, not deleted
    deal = json.loads(mb("opportunities", "show", "1", "--format", "json").stdout)
    assert len(deal["messages"]) == 1
    assert [o["summary"] for o in opportunities(mb)] == ["Deal", "Hello"]
