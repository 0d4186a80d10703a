"""Guard rails: what is rarely meant is confirmed or refused, never done silently. Answering a
ticket an auto-reply or a bounce opened asks first (`--force` in scripts); a reply to a closed
ticket says that it reopens it, and does; a contact's unknown client and a ticket's unknown
queue are refused (with "did you mean") unless `--create`."""

from __future__ import annotations

import json

from conftest import drop, message


def desk(mb):
    return mb.drop_channel(outgoing={"type": "sendmail"})


def ticket(mb, number: int) -> dict:
    return json.loads(mb("tickets", "show", str(number), "--format", "json").stdout)


def recipients_of_queued(mb) -> list[str]:
    rows = json.loads(mb("outbox", "list", "--format", "json").stdout)
    return [r["recipients"] for r in rows]


def test_a_ticket_an_auto_reply_opened_is_answered_only_when_confirmed(mb):
    drop(desk(mb), message("Automatic reply: Holidays", sender="ann@customer.example",
                           extra="Auto-Submitted: auto-replied\n"))
    assert mb("sync").exit_code == 0
    assert ticket(mb, 1)["kind"] == "auto_reply"

    refused = mb("tickets", "reply", "1", "-m", "Hello?")
    assert refused.exit_code == 2
    assert ("ticket #1 was opened by an auto-reply from ann@customer.example, not a person"
            in refused.stderr)
    assert "mailbridge: hint: pass --force to reply anyway" in refused.stderr
    assert recipients_of_queued(mb) == []

    forced = mb("tickets", "reply", "1", "-m", "Hello?", "--force")
    assert forced.exit_code == 0, forced.output
    assert "reply to ann@customer.example" in forced.stderr
    assert len(recipients_of_queued(mb)) == 1


def test_a_bounce_is_confirmed_too_and_its_daemon_is_never_a_recipient(mb):
    drop(desk(mb), message("Undelivered Mail Returned to Sender",
                           sender="MAILER-DAEMON@customer.example"))
    assert mb("sync").exit_code == 0
    nobody = mb("tickets", "reply", "1", "-m", "x", "--force")
    assert nobody.exit_code == 2 and "has nobody to reply to" in nobody.stderr

    refused = mb("tickets", "reply", "1", "-m", "x", "--to", "it@customer.example")
    assert refused.exit_code == 2 and "opened by a bounce" in refused.stderr
    assert mb("tickets", "reply", "1", "-m", "x", "--to", "it@customer.example",
              "--force").exit_code == 0


def test_a_reply_to_a_closed_ticket_says_it_reopens_it_and_does(mb):
    drop(desk(mb), message("Printer broken"))
    assert mb("sync").exit_code == 0
    assert mb("tickets", "close", "1").exit_code == 0

    result = mb("tickets", "reply", "1", "-m", "One more thing.")
    assert result.exit_code == 0, result.output
    assert "ticket #1 is closed; the reply reopens it" in result.stderr
    assert ticket(mb, 1)["status"] == "open"

    assert mb("tickets", "reply", "1", "-m", "And another.").stderr.count("reopens") == 0


def test_an_unknown_client_is_refused_unless_create(mb):
    mb.drop_channel()
    assert mb("clients", "add", "ACME").exit_code == 0
    typo = mb("contacts", "add", "bob@acme.test", "--client", "ACM")
    assert typo.exit_code == 2
    assert 'no client called ACM; did you mean "ACME"?' in typo.stderr
    assert "pass --create to add client ACM" in typo.stderr
    assert json.loads(mb("clients", "list", "--format", "json").stdout)[0]["contacts"] == 0

    assert mb("contacts", "add", "bob@acme.test", "--client", "acme").exit_code == 0  # any case
    created = mb("contacts", "add", "eve@beta.test", "--client", "Beta", "--create")
    assert created.exit_code == 0 and "client Beta added" in created.stderr
    clients = json.loads(mb("clients", "list", "--format", "json").stdout)
    assert [(c["name"], c["contacts"]) for c in clients] == [("ACME", 1), ("Beta", 1)]


def test_an_unknown_queue_is_refused_unless_create(mb):
    drop(mb.drop_channel(routes=[{"queue": "billing", "keywords": ["invoice"]}]), message())
    assert mb("sync").exit_code == 0
    typo = mb("tickets", "move", "1", "--queue", "biling")
    assert typo.exit_code == 2
    assert 'no queue called biling; did you mean "billing"?' in typo.stderr
    assert "pass --create to make queue biling" in typo.stderr
    assert ticket(mb, 1)["queue"] == "general"
    queues = [q["queue"] for q in json.loads(mb("queues", "list", "--format", "json").stdout)]
    assert "biling" not in queues

    assert mb("tickets", "move", "1", "--queue", "billing").exit_code == 0
    made = mb("tickets", "move", "1", "--queue", "vip", "--create")
    assert made.exit_code == 0 and "billing → vip" in made.stderr
    assert ticket(mb, 1)["queue"] == "vip"
