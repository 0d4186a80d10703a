"""`opportunities reply`: mail on an opportunity from the acting agent's own sales mailbox,
through the outbox, threaded so the customer's answer comes back to the opportunity. Against
the Graph fake (a delegated service account with Send As on each agent's mailbox, as the
sales-mailboxes document sets it up) and against Dovecot + aiosmtpd for an IMAP sales channel.
Resending after a crash is the outbox's own (tests/test_crash.py): this mail uses it as is."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.utils import format_datetime

from conftest import drop, m365_config
from test_editor import editor  # noqa: F401 (a fixture)
from test_sales import imap_sales_channel
from test_sales_graph import ok, one_error

SERVICE = "svc@contoso.com"
ALICE, BOB = "alice@contoso.com", "bob@contoso.com"
DAN = "dan@acme.test"
NOW = datetime.now(UTC)


def mail(sender: str, to: str, subject: str, body: str, mid: str, extra: str = "",
         when: datetime | None = None) -> bytes:
    """`when`: default half an hour ago (an answer to our mail: pass now)."""
    when = when or NOW - timedelta(minutes=30)
    return (f"From: Dan Buyer <{sender}>\nTo: {to}\nSubject: {subject}\n"
            f"Message-ID: <{mid}>\nDate: {format_datetime(when)}\n"
            f"{extra}\n{body}\n").encode()


def shown(mb, opportunity: int) -> list[dict]:
    return json.loads(ok(mb("opportunities", "show", str(opportunity), "--format", "json")
                         ).stdout)["messages"]


def opportunity_ids(mb) -> list[int]:
    return [o["id"] for o in json.loads(ok(mb("opportunities", "list", "--format", "json")
                                           ).stdout)]


def agents(mb, *names: str) -> None:
    for name in names:
        ok(mb("agents", "add", name, "--email", f"{name.lower()}@contoso.com"))


def test_an_agent_replies_from_her_own_mailbox_and_the_answer_comes_back(mb, graph):
    for box in (ALICE, BOB):
        graph.add_mailbox(box)
    graph.delegations[SERVICE] = {ALICE, BOB}
    graph.send_as[SERVICE] = {ALICE, BOB}  # Halo's setup: Send As on each agent's mailbox
    graph.approve_device_as = SERVICE
    m365_config(mb, graph, [{"address": ALICE, "agent": "Alice"},
                            {"address": BOB, "agent": "Bob"}], mode="sales", auth="delegated",
                channel_keys={"connected_at": (NOW - timedelta(days=1)).isoformat(),
                              "import_sent_items": True})
    agents(mb, "Alice", "Bob", "Dora")  # Dora has no sales mailbox
    ok(mb("auth", "login", "contoso"))
    graph.deliver(ALICE, mail(DAN, ALICE, "Printer fleet", "What would 40 cost?",
                              "q1@acme.test"))
    ok(mb("sync"))
    [opportunity] = opportunity_ids(mb)

    refused = mb("opportunities", "reply", str(opportunity), "-m", "Hi", "--as", "Dora")
    assert "agent Dora has no sales mailbox" in one_error(refused)
    assert mb.value("SELECT count(*) FROM outbox") == 0

    queued = ok(mb("opportunities", "reply", str(opportunity), "-m", "40 cost 12,000 EUR.",
                   env={"MAILBRIDGE_AGENT": "Alice"}))
    assert f"from {ALICE} (Alice), queued for {DAN}" in queued.stderr
    assert mb.value("SELECT opportunity FROM outbox") == opportunity
    ok(mb("sync"))  # sends it, as Alice's mailbox
    [(mailbox, mime)] = graph.sent
    assert mailbox == ALICE
    sent = message_from_bytes(mime)
    assert sent["From"].endswith(f"<{ALICE}>") and sent["To"] == DAN
    assert sent["In-Reply-To"] == "<q1@acme.test>" and "<q1@acme.test>" in sent["References"]
    assert sent["Subject"] == "Re: Printer fleet"
    assert mb.value("SELECT state FROM outbox") == "sent"

    # Exchange may rewrite a header or two of its Sent Items copy: the Message-ID still tells
    graph.deliver(ALICE, b"Thread-Index: AdkXyz==\r\n" + mime, folder="sentitems",
                  is_read=True)
    ok(mb("sync"))  # reads Sent Items: both copies there are the mail already stored
    hows = [m["how"] for m in shown(mb, opportunity)]
    assert hows == ["opened", "sent"]

    # Dan answers under another subject: the threading headers bring it back
    graph.deliver(ALICE, mail(DAN, ALICE, "Order", "Go ahead with 40.", "q2@acme.test",
                              f"In-Reply-To: {sent['Message-ID']}\n"
                              f"References: <q1@acme.test> {sent['Message-ID']}\n",
                              datetime.now(UTC)))
    ok(mb("sync"))
    assert opportunity_ids(mb) == [opportunity]
    assert [m["how"] for m in shown(mb, opportunity)] == ["opened", "sent", "matched"]
    assert mb.value("SELECT count(*) FROM inbox_items") == 0

    # Bob answers it too: from his own mailbox, never from Alice's
    ok(mb("opportunities", "reply", str(opportunity), "-m", "Confirmed.", "--as", "bob"))
    ok(mb("sync"))
    assert [box for box, _ in graph.sent] == [ALICE, BOB]
    answer = message_from_bytes(graph.sent[1][1])
    assert answer["In-Reply-To"] == "<q2@acme.test>"


def test_reply_needs_an_acting_agent_and_mail_to_answer(mb, graph):
    graph.add_mailbox(ALICE)
    m365_config(mb, graph, [{"address": ALICE, "agent": "Alice"}], mode="sales")
    agents(mb, "Alice")
    ok(mb("opportunities", "add", "--summary", "Fleet", "--contact", DAN))
    line = one_error(mb("opportunities", "reply", "1", "-m", "Hi"))
    assert "needs to know which agent you are" in line
    line = one_error(mb("opportunities", "reply", "1", "-m", "Hi", "--as", "Alice"))
    assert "opportunity #1 has no incoming mail to answer" in line
    assert "no opportunity #9" in one_error(
        mb("opportunities", "reply", "9", "-m", "Hi", "--as", "Alice"))


def test_an_imap_sales_channel_replies_over_its_smtp(mb, dovecot, imap_user, smtp,
                                                    monkeypatch):
    owner = imap_sales_channel(mb, imap_user, monkeypatch, outgoing={
        "type": "smtp", "host": "127.0.0.1", "port": smtp.port, "security": "none"})
    ok(mb("agents", "add", "Anna", "--email", owner))
    ok(mb("agents", "add", "Ben", "--email", "ben@us.test"))
    dovecot.append(imap_user.username, imap_user.password,
                   [mail(DAN, owner, "Toner offer", "Price for 10?", "t1@acme.test")])
    ok(mb("sync"))
    [opportunity] = opportunity_ids(mb)

    line = one_error(mb("opportunities", "reply", str(opportunity), "-m", "x", "--as", "Ben"))
    assert "agent Ben has no sales mailbox" in line

    ok(mb("opportunities", "reply", str(opportunity), "-m", "10 cost 400 EUR.", "--as", "anna"))
    ok(mb("sync"))
    [got] = smtp.received
    assert got.mail_from == owner and got.rcpt_tos == [DAN]
    assert got.message["In-Reply-To"] == "<t1@acme.test>"
    assert got.message["From"].endswith(f"<{owner}>")

    dovecot.append(imap_user.username, imap_user.password,
                   [mail(DAN, owner, "Order it", "Yes please.", "t2@acme.test",
                         f"In-Reply-To: {got.message['Message-ID']}\n"
                         "Reply-To: orders@acme.test\n", datetime.now(UTC))])
    ok(mb("sync"))
    assert opportunity_ids(mb) == [opportunity]
    assert [m["how"] for m in shown(mb, opportunity)] == ["opened", "sent", "matched"]
    ok(mb("opportunities", "reply", str(opportunity), "-m", "Ordered.", "--as", "anna"))
    ok(mb("sync"))
    assert smtp.received[-1].rcpt_tos == ["orders@acme.test"]  # its Reply-To (RFC 5322)


def test_a_new_mail_on_an_opportunity_and_its_answer(mb, graph):
    graph.add_mailbox(ALICE)
    m365_config(mb, graph, [{"address": ALICE, "agent": "Alice"}], mode="sales",
                channel_keys={"connected_at": (NOW - timedelta(days=1)).isoformat()})
    agents(mb, "Alice")
    ok(mb("opportunities", "add", "--summary", "Printer fleet", "--contact", DAN))
    for bad, said in ((["--to", "not-an-address"], "--to"),
                      (["--cc", ALICE], "Alice's own sales mailbox"),
                      (["--subject", " "], "--subject")):
        assert said in one_error(mb("opportunities", "mail", "1", "-m", "x", "--as", "Alice",
                                    *bad))
    assert mb.value("SELECT count(*) FROM outbox") == 0

    queued = ok(mb("opportunities", "mail", "1", "-m", "Shall we meet?", "--as", "Alice",
                   "--cc", "eve@acme.test"))
    assert f"queued for {DAN}, eve@acme.test" in queued.stderr
    ok(mb("sync"))
    assert [(box, message_from_bytes(m)["To"]) for box, m in graph.sent] == [
        (ALICE, DAN), (ALICE, "eve@acme.test")]
    first = message_from_bytes(graph.sent[0][1])
    assert first["Subject"] == "Printer fleet" and first["In-Reply-To"] is None

    graph.deliver(ALICE, mail(DAN, ALICE, "Re: Meeting", "Friday works.", "m2@acme.test",
                              f"In-Reply-To: {first['Message-ID']}\n", datetime.now(UTC)))
    ok(mb("sync"))
    assert opportunity_ids(mb) == [1]
    assert [m["how"] for m in shown(mb, 1)] == ["sent", "matched"]
    ok(mb("opportunities", "reply", "1", "-m", "See you then.", "--as", "Alice"))


def test_the_editor_template_names_the_opportunity_and_quotes_its_latest_mail(mb, editor):  # noqa: F811
    anna = "anna@us.test"
    spool = mb.drop_channel("sales", mode="sales", owner=anna, agent="Anna",
                            connected_at=(NOW - timedelta(hours=1)).isoformat(),
                            outgoing={"type": "sendmail"})
    ok(mb("agents", "add", "Anna", "--email", anna))
    drop(spool, mail(DAN, anna, "Toner offer", "Price for 10?", "e1@acme.test"))
    ok(mb("sync", "--no-send"))
    ok(mb("opportunities", "reply", "1", "--edit", "--as", "Anna", env=editor.env("400 EUR.\n")))
    [template] = editor.templates
    assert "# Reply on opportunity #1: Toner offer" in template
    assert "# > Price for 10?" in template
    [_, sent] = shown(mb, 1)
    assert sent["how"] == "sent" and sent["text"].startswith("400 EUR.")
    assert "> Price for 10?" in sent["text"]  # the client gets the quoted mail


def test_a_service_account_without_send_as_gets_the_remedy(mb, graph):
    graph.add_mailbox(ALICE)
    graph.delegations[SERVICE] = {ALICE}  # reads Alice's mailbox, may not send as her
    graph.approve_device_as = SERVICE
    m365_config(mb, graph, [{"address": ALICE, "agent": "Alice"}], mode="sales",
                auth="delegated",
                channel_keys={"connected_at": (NOW - timedelta(days=1)).isoformat()})
    agents(mb, "Alice")
    ok(mb("auth", "login", "contoso"))
    graph.deliver(ALICE, mail(DAN, ALICE, "Printer fleet", "Price?", "s1@acme.test"))
    ok(mb("sync"))
    ok(mb("opportunities", "reply", "1", "-m", "Soon.", "--as", "Alice"))
    synced = mb("sync")
    assert graph.sent == [] and "Traceback" not in synced.output
    [row] = json.loads(ok(mb("outbox", "list", "--format", "json")).stdout)
    assert row["state"] == "failed" and row["opportunity"] == 1
    assert "needs Send As" in row["last_error"]
