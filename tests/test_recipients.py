"""Who a reply goes to (Usedesk: "one letter to each recipient, keeping all correspondence
with the client in one ticket card"): every address the client side put on the
conversation, in pure code here, then end to end over the forwarding drop, IMAP (Dovecot)
and Microsoft 365 (the Graph fake), each sending through its own kind of connection."""

from __future__ import annotations

import email
import json
from email import policy

import pytest
from conftest import SECRET, drop, m365_config

from mailbridge.domain.recipients import Incoming, adjust, conversation, unique

OWN = ("support@example.com",)


def test_unique_once_each_never_our_own():
    found = unique(["ann@x.test", "Bob@y.test", "ANN@x.test", "support@acme.test",
                    "bob@y.test", "carol@z.test"], ["support@acme.test"])
    assert found == ("ann@x.test", "Bob@y.test", "carol@z.test")
    assert unique(["support@acme.test"], ["support@acme.test"]) == ()


def test_everyone_of_every_incoming_message_not_only_the_latest():
    bob = Incoming("human", "bob@c.test", ("support@example.com",),
                   ("carol@c.test", "dave@c.test", "frank@c.test"))
    carol = Incoming("human", "carol@c.test", ("bob@c.test", "support@example.com"),
                     ("dave@c.test", "erin@c.test"))
    assert conversation("bob@c.test", [bob, carol], OWN) == (
        "bob@c.test", "carol@c.test", "dave@c.test", "frank@c.test", "erin@c.test")


def test_automatic_senders_and_daemons_are_left_out_unless_they_wrote_themselves():
    bob = Incoming("human", "bob@c.test", ("support@example.com",),
                   ("carol@c.test", "vendor@v.test", "postmaster@c.test"))
    vendor_ack = Incoming("auto_reply", "vendor@v.test", ("support@example.com", "yan@c.test"))
    bounce = Incoming("bounce", "MAILER-DAEMON@c.test", ("support@example.com",))
    carol_away = Incoming("auto_reply", "carol@c.test", ("support@example.com",))
    carol = Incoming("human", "carol@c.test", ("bob@c.test",))
    found = conversation("bob@c.test", [bob, vendor_ack, bounce, carol_away, carol], OWN)
    # the vendor's desk only ever acknowledged automatically; Carol also wrote herself
    assert found == ("bob@c.test", "carol@c.test")
    # a ticket opened by an out-of-office reply has nobody to answer
    assert conversation("vendor@v.test", [vendor_ack], OWN) == ()


def test_unparsed_mail_still_counts_and_the_requester_comes_first():
    raw = Incoming(None, "", ())
    assert conversation("ann@c.test", [raw], OWN) == ("ann@c.test",)
    late = Incoming("human", "carol@c.test", ("ann@c.test",))
    assert conversation("ann@c.test", [late], OWN) == ("ann@c.test", "carol@c.test")


def test_reply_to_is_answered_instead_of_the_sender():
    """RFC 5322: Reply-To names where the author wants answers; a web form that mails from
    noreply@ with the customer in Reply-To is answered to the customer alone."""
    form = Incoming("human", "noreply@shop.test", ("support@example.com",), (),
                    ("Ann@c.test",))
    assert conversation("noreply@shop.test", [form], OWN) == ("Ann@c.test",)
    ann = Incoming("human", "ann@c.test", ("support@example.com", "noreply@shop.test"))
    assert conversation("noreply@shop.test", [form, ann], OWN) == ("Ann@c.test",)
    # a sender that also wrote without Reply-To is still one to answer
    plain = Incoming("human", "noreply@shop.test", ("support@example.com",))
    assert conversation("noreply@shop.test", [form, plain], OWN) == (
        "Ann@c.test", "noreply@shop.test")
    # anyone's Reply-To, not only the requester's
    ann = Incoming("human", "ann@c.test", ("support@example.com",))
    carol = Incoming("human", "carol@c.test", ("ann@c.test",), (), ("carol.home@h.test",))
    assert conversation("ann@c.test", [ann, carol], OWN) == ("ann@c.test", "carol.home@h.test")
    # a Reply-To with no usable address ("Jane Doe", a bare word) or only our own address
    # is as if there were none: the sender is answered, not nobody
    for junk in (("",), ("Customer",), ("support@example.com",), ("Support@Example.com", "")):
        odd = Incoming("human", "ann@c.test", ("support@example.com",), (), junk)
        assert conversation("ann@c.test", [odd], OWN) == ("ann@c.test",), junk
    # a list-like Reply-To adds its addresses in its place
    bob = Incoming("human", "bob@c.test", ("support@example.com",), ("carol@c.test",),
                   ("team@c.test", "bob@c.test"))
    assert conversation("bob@c.test", [bob], OWN) == ("team@c.test", "bob@c.test",
                                                      "carol@c.test")


def test_adjust_replaces_adds_and_drops():
    found = ("bob@c.test", "carol@c.test", "dave@c.test")
    assert adjust(found) == found
    assert adjust(found, cc=["erin@c.test", "Bob@c.test"]) == (*found, "erin@c.test")
    assert adjust(found, drop=["DAVE@c.test"]) == ("bob@c.test", "carol@c.test")
    assert adjust(found, to=["erin@c.test"], cc=["carol@c.test"]) == ("erin@c.test",
                                                                      "carol@c.test")
    with pytest.raises(ValueError, match="zoe@c.test"):
        adjust(found, drop=["zoe@c.test"])


# Bob writes with Carol, Dave and Frank in Cc; Carol answers all, with Dave and Erin in Cc
# (Frank is no longer copied); Zed's out-of-office reply comes back last.
THREAD = [
    b"From: Bob <bob@customer.example>\r\nTo: support@example.com\r\n"
    b"Cc: Carol <carol@customer.example>, dave@customer.example, frank@customer.example\r\n"
    b"Subject: Printer broken\r\nMessage-ID: <b1@customer.example>\r\n"
    b"Date: Mon, 16 Nov 2026 09:00:00 +0000\r\n\r\nIt is broken.\r\n",
    b"From: Carol <carol@customer.example>\r\n"
    b"To: bob@customer.example, support@example.com\r\n"
    b"Cc: dave@customer.example, Erin <erin@customer.example>\r\n"
    b"Subject: Re: Printer broken\r\nMessage-ID: <c1@customer.example>\r\n"
    b"In-Reply-To: <b1@customer.example>\r\nReferences: <b1@customer.example>\r\n"
    b"Date: Mon, 16 Nov 2026 10:00:00 +0000\r\n\r\nMine too.\r\n",
    b"From: zed@customer.example\r\nTo: support@example.com\r\n"
    b"Subject: Automatic reply: Printer broken\r\nAuto-Submitted: auto-replied\r\n"
    b"Message-ID: <z1@customer.example>\r\nIn-Reply-To: <c1@customer.example>\r\n"
    b"Date: Mon, 16 Nov 2026 10:01:00 +0000\r\n\r\nI am away.\r\n",
]
EVERYONE = ["bob@customer.example", "carol@customer.example", "dave@customer.example",
            "frank@customer.example", "erin@customer.example"]


def smtp_out(server) -> dict:
    return {"type": "smtp", "host": "127.0.0.1", "port": server.port, "security": "none"}


def reply_all(mb) -> list[str]:
    """Reply to the one ticket; the recipients it printed before queueing."""
    rows = json.loads(mb("tickets", "list", "--format", "json").stdout)
    assert len(rows) == 1, rows
    result = mb("tickets", "reply", str(rows[0]["id"]), "-m", "On it.")
    assert result.exit_code == 0, result.output
    first = result.stderr.splitlines()[0]
    assert "reply to " in first and "queued" not in first  # shown before anything is queued
    return first.split("reply to ", 1)[1].split(", ")


def test_drop_channel_replies_to_everyone_over_smtp(mb, smtp):
    spool = mb.drop_channel(outgoing=smtp_out(smtp))
    for i, raw in enumerate(THREAD):
        drop(spool, raw, f"{i}.test")  # in the order they were written
    assert mb("sync").exit_code == 0
    assert reply_all(mb) == EVERYONE
    assert mb("sync").exit_code == 0
    assert [r.rcpt_tos for r in smtp.received] == [[a] for a in EVERYONE]
    assert [r.message["To"] for r in smtp.received] == EVERYONE


def test_a_web_form_mail_is_answered_to_its_reply_to(mb, smtp):
    spool = mb.drop_channel(outgoing=smtp_out(smtp))
    drop(spool, b"From: Shop <noreply@shop.example>\r\nTo: support@example.com\r\n"
                b"Reply-To: Ann Customer <ann@customer.example>\r\n"
                b"Subject: Contact form: where is my order?\r\n"
                b"Message-ID: <form1@shop.example>\r\n"
                b"Date: Mon, 16 Nov 2026 09:00:00 +0000\r\n\r\nOrder 123?\r\n", "f.test")
    assert mb("sync").exit_code == 0
    assert reply_all(mb) == ["ann@customer.example"]
    assert mb("sync").exit_code == 0
    assert [r.rcpt_tos for r in smtp.received] == [["ann@customer.example"]]
    shown = json.loads(mb("tickets", "show", "1", "--format", "json").stdout)
    assert shown["messages"][0]["reply_to"] == [{"name": "Ann Customer",
                                                 "email": "ann@customer.example"}]


def test_imap_channel_replies_to_everyone(mb, smtp, dovecot, imap_user, monkeypatch):
    monkeypatch.setenv("MB_TEST_IMAP_PASSWORD", imap_user.password)
    mb.write_config([{"name": "desk", "main_email": "support@example.com",
                      "outgoing": smtp_out(smtp), "incoming": {
                          "type": "imap", "host": "127.0.0.1", "port": imap_user.port,
                          "security": "none", "username": imap_user.username,
                          "password": {"env": "MB_TEST_IMAP_PASSWORD"}}}])
    dovecot.append(imap_user.username, imap_user.password, THREAD)
    assert mb("sync").exit_code == 0
    assert reply_all(mb) == EVERYONE
    assert mb("sync").exit_code == 0
    assert sorted(r.rcpt_tos[0] for r in smtp.received) == sorted(EVERYONE)


def test_microsoft_365_channel_replies_to_everyone_through_graph(mb, graph):
    assert SECRET  # the fake's app secret is read from the environment
    for raw in THREAD:
        graph.deliver("a@contoso.com", raw)
    m365_config(mb, graph, ["a@contoso.com"], channel_keys={
        "main_email": "support@example.com",
        "outgoing": {"type": "m365", "app": "contoso", "mailbox": "a@contoso.com"}})
    assert mb("sync").exit_code == 0
    assert reply_all(mb) == EVERYONE
    assert mb("sync").exit_code == 0
    sent = [email.message_from_bytes(mime, policy=policy.default) for _, mime in graph.sent]
    assert [m["To"] for m in sent] == EVERYONE  # Graph takes the recipients from the MIME


def test_to_cc_drop_adjust_and_mistakes_are_one_line(mb, smtp):
    spool = mb.drop_channel(outgoing=smtp_out(smtp))
    for i, raw in enumerate(THREAD):
        drop(spool, raw, f"{i}.test")  # in the order they were written
    assert mb("sync").exit_code == 0
    some = mb("tickets", "reply", "1", "-m", "x", "--drop", "frank@customer.example",
              "--drop", "Dave@customer.example", "--cc", "boss@customer.example")
    assert some.exit_code == 0, some.output
    assert ("reply to bob@customer.example, carol@customer.example, erin@customer.example, "
            "boss@customer.example") in some.stderr
    only = mb("tickets", "reply", "1", "-m", "x", "--to", "carol@customer.example")
    assert "reply to carol@customer.example\n" in only.stderr
    typo = mb("tickets", "reply", "1", "-m", "x", "--drop", "fran@customer.example")
    assert typo.exit_code == 2
    assert "--drop fran@customer.example: not among the recipients (bob@" in typo.stderr
    ours = mb("tickets", "reply", "1", "-m", "x", "--cc", "Support@example.com")
    assert ours.exit_code == 2 and "own address" in ours.stderr
    bad = mb("tickets", "reply", "1", "-m", "x", "--to", "carol")
    assert bad.exit_code == 2 and "--to carol: must be an e-mail address" in bad.stderr
    nobody = mb("tickets", "reply", "1", "-m", "x", *(f"--drop={a}" for a in EVERYONE))
    assert nobody.exit_code == 2 and "nobody to reply to" in nobody.stderr
    rows = json.loads(mb("outbox", "list", "--format", "json").stdout)
    assert len(rows) == 5  # four, then one; the refused ones queued nothing
