"""Internal comments on tickets, and Usedesk's "Forwarding — a new ticket": "create a new
ticket … with all correspondence added to the comment field". Comments are shown with the
ticket and never reach the client (a real SMTP server records what is sent)."""

from __future__ import annotations

import json

import pytest
from conftest import drop, message


def desk(mb, smtp, **channel):
    spool = mb.drop_channel(outgoing={"type": "smtp", "host": "127.0.0.1", "port": smtp.port,
                                      "security": "none"}, **channel)
    drop(spool, message("Printer broken", body="It is broken."), "1.test")
    drop(spool, message("Re: Printer broken", message_id="m2@customer.example",
                        extra="In-Reply-To: <m1@customer.example>\n",
                        body="Still broken, tray 2."), "2.test")
    assert mb("sync").exit_code == 0
    return spool


def shown(mb, ticket: int) -> dict:
    result = mb("tickets", "show", str(ticket), "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_a_comment_is_shown_and_never_sent(mb, smtp):
    desk(mb, smtp)
    assert mb("agents", "add", "alice", "--email", "alice@example.com").exit_code == 0
    added = mb("tickets", "comment", "1", "-m", "Vendor says firmware bug.", "--as", "alice")
    assert added.exit_code == 0, added.output
    assert "ticket #1: comment #1 added" in added.stderr
    assert mb("tickets", "comment", "1", input="From stdin.\n").exit_code == 0

    data = shown(mb, 1)
    assert [(c["id"], c["author"], c["text"]) for c in data["comments"]] == [
        (1, "alice", "Vendor says firmware bug."), (2, "", "From stdin.\n")]
    assert set(data["comments"][0]) == {"id", "author", "text", "created_at"}
    text = mb("tickets", "show", "1").stdout
    assert "--- comment 1 by alice" in text and "(internal, never sent)" in text
    assert text.index("Still broken") < text.index("Vendor says firmware bug.")

    assert mb("tickets", "reply", "1", "-m", "We are on it.").exit_code == 0
    assert mb("tickets", "forward", "1", "--to", "vendor@example.org").exit_code == 0
    assert mb("sync").exit_code == 0
    assert len(smtp.received) == 2
    for got in smtp.received:
        raw = got.message.as_string()
        assert "It is broken." in raw  # the correspondence is quoted …
        assert "firmware" not in raw and "From stdin" not in raw  # … the comments never


def test_comment_mistakes_are_one_line(mb, smtp):
    desk(mb, smtp)
    missing = mb("tickets", "comment", "9", "-m", "x")
    assert missing.exit_code == 2 and "no ticket #9" in missing.stderr
    nobody = mb("tickets", "comment", "1", "-m", "x", "--as", "nobody")
    assert nobody.exit_code == 2 and "no agent called nobody" in nobody.stderr
    empty = mb("tickets", "comment", "1", "-m", "  ")
    assert empty.exit_code == 2 and "empty" in empty.stderr
    assert shown(mb, 1)["comments"] == []


@pytest.mark.parametrize("quoting", ["none", "send_to_client", "display_and_send"])
def test_a_forward_opens_a_ticket_with_the_correspondence_in_its_comment(mb, smtp, quoting):
    desk(mb, smtp, quoting=quoting)
    assert mb("tickets", "reply", "1", "-m", "Try tray 1.").exit_code == 0
    result = mb("tickets", "forward", "1", "--to", "vendor@example.org", "-m", "Can you look?")
    assert result.exit_code == 0, result.output
    assert "new ticket #2" in result.stderr

    new = shown(mb, 2)
    [note] = new["comments"]
    assert note["text"].startswith("Forwarded from ticket #1 to vendor@example.org.")
    body = note["text"]
    # every message, oldest first, whatever the quoting mode kept in the message itself
    assert body.index("It is broken.") < body.index("Still broken, tray 2.") < body.index(
        "Try tray 1.")
    assert "--- Ann <ann@customer.example>, Mon, 16 Nov 2026 09:00:00 +0000" in body
    assert [m["direction"] for m in new["messages"]] == ["out"]
    [back] = shown(mb, 1)["comments"]
    assert back["text"] == "Forwarded to vendor@example.org as new ticket #2."

    assert mb("sync").exit_code == 0
    forwarded = next(r.message for r in smtp.received if r.rcpt_tos == ["vendor@example.org"])
    assert "It is broken." in forwarded.get_body(("plain",)).get_content()
    assert "Forwarded from ticket" not in forwarded.as_string()  # the comment stays inside


def test_a_forward_kept_in_its_ticket_adds_no_comment(mb, smtp):
    desk(mb, smtp, forward_creates_ticket=False)
    result = mb("tickets", "forward", "1", "--to", "vendor@example.org")
    assert result.exit_code == 0 and "ticket #1: forward" in result.stderr
    data = shown(mb, 1)
    assert data["comments"] == [] and [m["direction"] for m in data["messages"]][-1] == "out"
