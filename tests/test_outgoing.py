"""Outgoing mail against a real SMTP server (aiosmtpd, tests/servers/smtp.py): replies reach
the requester and each copied address in their own mail, with signature, quote, BCC in the
envelope only and threading headers that bring the answer back; the outbox never sends a
message twice, whatever breaks."""

from __future__ import annotations

import json

import pytest
from conftest import drop, message
from servers.smtp import SmtpServer

PASSWORD_ENV = "MB_TEST_SMTP_PASSWORD"


@pytest.fixture
def smtp():
    server = SmtpServer()
    yield server
    server.close()


def desk(mb, smtp_server, quoting="display_and_send", **outgoing):
    settings = {"type": "smtp", "host": "127.0.0.1", "port": smtp_server.port,
                "security": "none", "from_name": "Acme Support",
                "bcc": "archive@example.com", **outgoing}
    return mb.drop_channel(signature="-- \nAcme Support", use_common_signature=True,
                           quoting=quoting, outgoing=settings)


def first_ticket(mb, spool) -> None:
    drop(spool, message("Printer broken", body="It is broken.",
                        extra="Cc: Bob <bob@customer.example>, support@example.com\n"))
    assert mb("sync").exit_code == 0


def outbox(mb) -> list[dict]:
    return json.loads(mb("outbox", "list", "--format", "json").stdout)


def test_reply_one_mail_per_recipient_with_signature_quote_bcc_and_threading(mb, smtp):
    spool = desk(mb, smtp)
    first_ticket(mb, spool)
    queued = mb("tickets", "reply", "1", "--message", "We are on it.")
    assert queued.exit_code == 0, queued.stderr
    assert "ann@customer.example, bob@customer.example" in queued.stderr
    assert [r["state"] for r in outbox(mb)] == ["pending", "pending"]
    assert smtp.received == []  # queued, not sent

    sent = mb("sync")
    assert sent.exit_code == 0, sent.stderr
    assert "2 sent" in sent.stderr
    assert sorted(r.rcpt_tos[0] for r in smtp.received) == ["ann@customer.example",
                                                           "bob@customer.example"]
    for got in smtp.received:
        msg = got.message
        assert got.rcpt_tos[1:] == ["archive@example.com"]  # BCC: envelope only
        assert msg["Bcc"] is None and msg["To"] == got.rcpt_tos[0]
        assert got.mail_from == "support@example.com"
        assert msg["From"] == "Acme Support <support@example.com>"
        assert msg["Subject"] == "[#1] Re: Printer broken"
        assert msg["In-Reply-To"] == "<m1@customer.example>"
        assert "<m1@customer.example>" in msg["References"]
        assert msg["Message-ID"].startswith("<mb.1.") and msg["Message-ID"].endswith(
            "@example.com>")
        text = msg.get_body(("plain",)).get_content()
        assert text.startswith("We are on it.\n\n-- \nAcme Support\n\nOn Mon, 16 Nov 2026")
        assert "Ann wrote:\n> It is broken." in text
        assert "Acme Support" in msg.get_body(("html",)).get_content()
    ids = {r.message["Message-ID"] for r in smtp.received}
    assert len(ids) == 1  # one message, one copy per recipient

    answer = message("Re: [#1] Re: Printer broken", message_id="a2@customer.example",
                     extra=f"In-Reply-To: {ids.pop()}\n", body="Thanks!")
    drop(spool, answer)
    assert mb("sync").exit_code == 0
    ticket = json.loads(mb("tickets", "show", "1", "--format", "json").stdout)
    assert [m["direction"] for m in ticket["messages"]] == ["in", "out", "in"]
    assert json.loads(mb("tickets", "list", "--format", "json").stdout)[0]["id"] == 1
    assert len(json.loads(mb("tickets", "list", "--format", "json").stdout)) == 1


def test_agent_signature_wins_and_quoting_none_sends_no_history(mb, smtp):
    spool = desk(mb, smtp, quoting="none")
    first_ticket(mb, spool)
    assert mb("agents", "add", "alice", "--email", "alice@example.com",
              "--signature", "Alice, 2nd line support").exit_code == 0
    assert mb("tickets", "reply", "1", "-m", "Fixed.", "--as", "alice").exit_code == 0
    assert mb("sync").exit_code == 0
    text = smtp.received[0].message.get_body(("plain",)).get_content()
    assert text == "Fixed.\n\nAlice, 2nd line support\n"
    missing = mb("tickets", "reply", "1", "-m", "x", "--as", "nobody")
    assert missing.exit_code == 2 and "no agent called nobody" in missing.stderr


def test_send_to_client_quotes_the_mail_but_not_the_ticket(mb, smtp):
    spool = desk(mb, smtp, quoting="send_to_client")
    first_ticket(mb, spool)
    assert mb("tickets", "reply", "1", "-m", "Done.").exit_code == 0
    assert mb("sync").exit_code == 0
    assert "wrote:" in smtp.received[0].message.get_body(("plain",)).get_content()
    shown = json.loads(mb("tickets", "show", "1", "--format", "json").stdout)["messages"][1]
    assert shown["text"] == "Done.\n\n-- \nAcme Support\n"


def test_reply_text_from_stdin_and_attachments(mb, smtp, tmp_path):
    spool = desk(mb, smtp)
    first_ticket(mb, spool)
    report = tmp_path / "report.pdf"
    report.write_bytes(b"%PDF-1.4 fake")
    result = mb("tickets", "reply", "1", "--attach", str(report), input="From stdin.\n")
    assert result.exit_code == 0, result.stderr
    assert mb("sync").exit_code == 0
    msg = smtp.received[0].message
    assert msg.get_body(("plain",)).get_content().startswith("From stdin.")
    files = [(p.get_filename(), p.get_content_type(), p.get_content())
             for p in msg.iter_attachments()]
    assert files == [("report.pdf", "application/pdf", b"%PDF-1.4 fake")]
    empty = mb("tickets", "reply", "1", input="   \n")
    assert empty.exit_code == 2 and "empty" in empty.stderr


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_tls_and_auth(mb, tmp_path, monkeypatch, security):
    server = SmtpServer(security, user="mailer", password="s3cret-smtp")
    try:
        monkeypatch.setenv(PASSWORD_ENV, "s3cret-smtp")
        spool = desk(mb, server, security=security, username="mailer",
                     password={"env": PASSWORD_ENV}, ca_file=str(server.ca_file))
        first_ticket(mb, spool)
        checked = mb("channels", "test", "support", "--format", "json")
        assert checked.exit_code == 0, checked.stderr
        assert json.loads(checked.stdout)["outgoing"]["login"] == "ok"
        assert mb("tickets", "reply", "1", "-m", "Over TLS.").exit_code == 0
        assert mb("sync").exit_code == 0
        assert len(server.received) == 2

        monkeypatch.setenv(PASSWORD_ENV, "wrong-password-xyzzy")
        refused = mb("channels", "test", "support")
        assert refused.exit_code == 3
        assert "refused the login for mailer" in refused.stderr
        assert "xyzzy" not in refused.stderr and "Traceback" not in refused.stderr
        assert mb("tickets", "reply", "1", "-m", "Again.").exit_code == 0
        held = mb("sync")
        assert held.exit_code == 4 and "refused the login" in held.stderr
        assert [r["state"] for r in outbox(mb)][-2:] == ["pending", "pending"]
    finally:
        server.close()


def test_untrusted_certificate_names_the_host(mb):
    server = SmtpServer("ssl")
    try:
        spool = desk(mb, server, security="ssl")  # no ca_file: the test CA is unknown
        first_ticket(mb, spool)
        result = mb("channels", "test", "support")
        assert result.exit_code == 2
        assert "certificate of 127.0.0.1 cannot be trusted" in result.stderr
    finally:
        server.close()


def test_a_connection_lost_after_data_is_unknown_and_never_resent(mb, smtp):
    spool = desk(mb, smtp)
    first_ticket(mb, spool)
    smtp.recorder.hang_up_after_data = True
    assert mb("tickets", "reply", "1", "-m", "Maybe.").exit_code == 0
    result = mb("sync")
    assert result.exit_code == 4
    assert "connection broke after the message was sent" in result.stderr
    assert [r["state"] for r in outbox(mb)] == ["unknown", "unknown"]
    doctor = {c["check"]: c for c in json.loads(mb("doctor", "--offline", "--format",
                                                    "json").stdout)}
    assert doctor["outbox"]["status"] == "fail" and "2 unknown" in doctor["outbox"]["detail"]
    smtp.recorder.hang_up_after_data = False
    assert mb("sync").exit_code == 0
    assert smtp.received == []  # never re-sent on its own
    ids = [str(r["id"]) for r in outbox(mb)]
    assert mb("outbox", "retry", *ids).exit_code == 0
    assert mb("sync").exit_code == 0
    assert len(smtp.received) == 2
    assert [r["state"] for r in outbox(mb)] == ["sent", "sent"]
    again = mb("outbox", "retry", ids[0])
    assert again.exit_code == 2 and "is sent" in again.stderr


def test_permanent_refusal_fails_and_temporary_waits(mb, smtp):
    spool = desk(mb, smtp)
    first_ticket(mb, spool)
    smtp.recorder.refuse["bob@customer.example"] = "550 5.1.1 no such user"
    smtp.recorder.data_reply = "451 4.3.0 try again later"
    assert mb("tickets", "reply", "1", "-m", "Hello.").exit_code == 0
    assert mb("sync").exit_code == 4
    rows = {r["recipients"][0]: r for r in outbox(mb)}
    assert rows["ann@customer.example"]["state"] == "pending"  # 451: tried again later
    assert rows["ann@customer.example"]["attempts"] == 1
    assert "451" in rows["ann@customer.example"]["last_error"]
    assert rows["bob@customer.example"]["state"] == "pending"  # its BCC was accepted ...
    smtp.recorder.data_reply = None
    partly = mb("sync")
    assert partly.exit_code == 4  # sent, but one envelope recipient was refused for good
    assert "bob@customer.example refused: 550" in partly.stderr
    rows = {r["recipients"][0]: r for r in outbox(mb)}
    assert rows["ann@customer.example"]["state"] == "sent"
    assert rows["bob@customer.example"]["state"] == "sent"  # ... so it went, with a note
    assert "bob@customer.example refused: 550" in rows["bob@customer.example"]["last_error"]


def test_every_recipient_refused_permanently_is_failed(mb, smtp):
    spool = desk(mb, smtp, bcc="ann@customer.example")
    first_ticket(mb, spool)
    smtp.recorder.refuse["bob@customer.example"] = "550 5.1.1 no such user"
    smtp.recorder.refuse["ann@customer.example"] = "550 5.1.1 no such user"
    assert mb("tickets", "reply", "1", "-m", "Hello.").exit_code == 0
    assert mb("sync").exit_code == 4
    assert {r["state"] for r in outbox(mb)} == {"failed"}


def test_a_crash_while_sending_leaves_unknown_not_a_second_copy(mb, smtp):
    spool = desk(mb, smtp)
    first_ticket(mb, spool)
    assert mb("tickets", "reply", "1", "-m", "Hello.").exit_code == 0
    mb.write("UPDATE outbox SET state='sending' WHERE id=1")  # what a SIGKILL mid-send leaves
    assert mb("sync").exit_code == 4
    states = [r["state"] for r in outbox(mb)]
    assert states == ["unknown", "sent"]
    assert [r.rcpt_tos[0] for r in smtp.received] == ["bob@customer.example"]


def test_no_send_holds_and_cancel_drops(mb, smtp):
    spool = desk(mb, smtp)
    first_ticket(mb, spool)
    assert mb("tickets", "reply", "1", "-m", "Hold.").exit_code == 0
    assert mb("sync", "--no-send").exit_code == 0
    assert smtp.received == []
    assert mb("outbox", "cancel", "1").exit_code == 0
    assert mb("sync").exit_code == 0
    assert [r.rcpt_tos[0] for r in smtp.received] == ["bob@customer.example"]
    status = json.loads(mb("status", "--format", "json").stdout)[0]
    assert status["outbox"] == 0


def test_forward_opens_a_new_ticket_holding_the_conversation(mb, smtp):
    spool = desk(mb, smtp)
    first_ticket(mb, spool)
    result = mb("tickets", "forward", "1", "--to", "boss@example.org", "-m", "FYI")
    assert result.exit_code == 0, result.stderr
    assert "new ticket #2" in result.stderr
    assert mb("sync").exit_code == 0
    msg = smtp.received[0].message
    assert msg["Subject"] == "[#2] Fwd: Printer broken"
    assert msg["To"] == "boss@example.org"
    assert "Ann wrote:\n> It is broken." in msg.get_body(("plain",)).get_content()
    new = json.loads(mb("tickets", "show", "2", "--format", "json").stdout)
    assert new["requester_email"] == "boss@example.org"
    assert [m["direction"] for m in new["messages"]] == ["out"]


def test_channels_test_can_send_a_test_mail(mb, smtp):
    desk(mb, smtp)
    result = mb("channels", "test", "support", "--send-test-to", "me@example.net")
    assert result.exit_code == 0, result.stderr
    assert "test mail to me@example.net: accepted" in result.stdout
    msg = smtp.received[0].message
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["Subject"] == "mailbridge test of channel support"


def test_a_channel_without_outgoing_cannot_reply(mb):
    spool = mb.drop_channel()
    drop(spool, message())
    assert mb("sync").exit_code == 0
    result = mb("tickets", "reply", "1", "-m", "x")
    assert result.exit_code == 2 and "has no outgoing connection" in result.stderr


# The real CLI in a child process, killed (os._exit) right before or right after the SMTP
# transaction of the first outbox row: the row is then `unknown`, and nothing is ever sent
# twice by itself.
CRASH = """
import os, sys
import mailbridge.connectors.smtp as smtp
from mailbridge.cli.app import app
where = sys.argv[1]
real = smtp.SmtpSender.send
def send(self, *args, **kwargs):
    if where == "before":
        os._exit(137)
    out = real(self, *args, **kwargs)
    os._exit(137)
smtp.SmtpSender.send = send
app(["--config", sys.argv[2], "sync", "--quiet"], prog_name="mailbridge")
"""


@pytest.mark.parametrize("where", ["before", "after"])
def test_killed_mid_send_never_sends_twice(mb, smtp, where):
    import subprocess
    import sys

    spool = desk(mb, smtp)
    first_ticket(mb, spool)
    assert mb("tickets", "reply", "1", "-m", "Once.").exit_code == 0
    child = subprocess.run([sys.executable, "-c", CRASH, where, str(mb.config)],
                           capture_output=True, timeout=60)
    assert child.returncode == 137, child.stderr.decode()
    delivered = len(smtp.received)
    assert delivered == (1 if where == "after" else 0)
    assert mb("sync").exit_code == 4  # the interrupted row is reported as unknown
    states = [r["state"] for r in outbox(mb)]
    assert states == ["unknown", "sent"]
    assert len(smtp.received) == delivered + 1  # only the other recipient's copy
    assert sorted(r.rcpt_tos[0] for r in smtp.received).count("ann@customer.example") == \
        (1 if where == "after" else 0)


LAST_WRITER_EXITS = """
import sys
from pathlib import Path
from mailbridge.store.lock import write_lock
with write_lock(Path(sys.argv[1])):
    pass
"""


@pytest.mark.sqlite_only  # a shared store: tests/test_fleet.py (the sender's heartbeat)
def test_a_row_left_sending_is_listed_as_unknown_once_its_sender_is_gone(mb, smtp):
    """`sending` is in flight only while the process that took the write lock lives; a row a
    crash left `sending` is listed (and may be retried or cancelled) as `unknown` at once."""
    import subprocess
    import sys

    from mailbridge.store.lock import write_lock

    spool = desk(mb, smtp)
    first_ticket(mb, spool)
    assert mb("tickets", "reply", "1", "-m", "Hello.").exit_code == 0
    mb.write("UPDATE outbox SET state='sending' WHERE id=1")  # what a SIGKILL mid-send leaves
    with write_lock(mb.store):  # a live sync holds the lock: the row is in flight
        assert [r["state"] for r in outbox(mb)] == ["sending", "pending"]
    subprocess.run([sys.executable, "-c", LAST_WRITER_EXITS, str(mb.store)], check=True,
                   timeout=60)  # the last writer has exited: nobody is sending row 1
    rows = outbox(mb)
    assert [r["state"] for r in rows] == ["unknown", "pending"]
    assert rows[0]["last_error"].startswith("interrupted while sending: it may or may not")
    unknown = json.loads(mb("outbox", "list", "--state", "unknown", "--format", "json").stdout)
    assert [r["id"] for r in unknown] == [1]
    sending = json.loads(mb("outbox", "list", "--state", "sending", "--format", "json").stdout)
    assert sending == []
    retried = mb("outbox", "retry", "1")
    assert retried.exit_code == 0, retried.stderr
    assert mb("sync").exit_code == 0
    assert sorted(r.rcpt_tos[0] for r in smtp.received) == ["ann@customer.example",
                                                            "bob@customer.example"]
