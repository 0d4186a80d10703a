"""Composing outgoing mail in pure code: subjects, signatures, quoting."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes, policy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailbridge.domain.compose import (
    MAX_QUOTED,
    Draft,
    Quoted,
    choose_signature,
    compose,
    quote_text,
    subject_for,
)
from mailbridge.domain.parse import parse
from mailbridge.domain.threading import ticket_token

WHEN = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(("subject", "expected"), [
    ("Printer broken", "[#7] Re: Printer broken"),
    ("Re: Printer broken", "[#7] Re: Printer broken"),
    ("RE: AW: Fwd: Printer broken", "[#7] Re: Printer broken"),
    ("[#7] Re: Printer broken", "[#7] Re: Printer broken"),
    ("SV: WG: Printer broken [#7]", "[#7] Re: Printer broken"),
    ("Re[2]: Printer broken", "[#7] Re: Printer broken"),
    ("", "[#7] Re: (no subject)"),
    ("Report: quarterly", "[#7] Re: Report: quarterly"),  # only reply prefixes go
])
def test_one_prefix_and_one_token(subject, expected):
    assert subject_for(subject, 7, "Re") == expected


def test_forward_prefix():
    assert subject_for("Re: Printer broken", 9, "Fwd") == "[#9] Fwd: Printer broken"


@pytest.mark.parametrize(("agent", "channel", "common", "expected"), [
    ("Alice", "Acme", True, "Alice"),  # personal wins
    ("Alice", "Acme", False, "Alice"),
    ("", "Acme", True, "Acme"),
    ("", "Acme", False, ""),  # common signature switched off
    ("  ", "", True, ""),
])
def test_signature_rules(agent, channel, common, expected):
    assert choose_signature(agent, channel, common) == expected


def test_quote_is_newest_first_and_at_most_30():
    history = [Quoted(f"P{i}", f"p{i}@x.test", WHEN, f"text {i}\n\nsecond") for i in range(40)]
    text = quote_text(history)
    assert text.startswith("On Mon, 16 Nov 2026 09:00:00 +0000, P0 wrote:\n> text 0\n>\n> second")
    assert text.count(" wrote:") == MAX_QUOTED
    assert "P30 wrote" not in text


def test_compose_copies_differ_only_in_to():
    draft = Draft(ticket=3, subject="Hello", body="Hi", from_name="Acme",
                  from_email="help@acme.test", recipients=("a@x.test", "b@y.test"),
                  signature="-- \nAcme", history=(Quoted("Ann", "a@x.test", None, "Q?"),),
                  in_reply_to="m1@x.test", references=("m0@x.test", "m1@x.test"))
    made = compose(draft, "u1", "acme.test")
    assert made.message_id == "mb.3.u1@acme.test"
    assert made.unquoted == "Hi\n\n-- \nAcme\n"
    assert made.text == "Hi\n\n-- \nAcme\n\nOn an earlier date, Ann wrote:\n> Q?\n"
    first, second = (message_from_bytes(raw, policy=policy.default) for _, raw in made.copies)
    assert (first["To"], second["To"]) == ("a@x.test", "b@y.test")
    assert first["References"] == "<m0@x.test> <m1@x.test>"  # no duplicate of In-Reply-To
    assert first["Auto-Submitted"] is None
    for header in ("Subject", "Message-ID", "In-Reply-To", "From"):
        assert first[header] == second[header]


def test_notices_have_no_ticket_token_and_are_auto_submitted():
    made = compose(Draft(ticket=None, subject="channel quiet", body="x", from_name="",
                         from_email="a@acme.test", recipients=("ops@acme.test",),
                         automatic=True), "u2", "acme.test")
    msg = message_from_bytes(made.copies[0][1], policy=policy.default)
    assert msg["Subject"] == "channel quiet"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["X-Mailbridge-Ticket"] is None
    assert made.message_id == "mb.notice.u2@acme.test"


# Whatever an agent types, what we send must parse back (with our own parser, as the client's
# answer will be parsed) to the same subject, token, threading headers and text.
TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), max_size=120)
LINES = st.lists(TEXT, min_size=1, max_size=6).map("\n".join)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(subject=TEXT, body=LINES, name=TEXT, ticket=st.integers(1, 10**9))
def test_what_we_send_parses_back(subject, body, name, ticket):
    draft = Draft(ticket=ticket, subject=subject, body=body, from_name=name,
                  from_email="help@acme.test", recipients=("ann@x.test",),
                  in_reply_to="m1@x.test", references=("m0@x.test",))
    made = compose(draft, "u", "acme.test")
    parsed = parse(made.copies[0][1])
    assert parsed.subject == made.subject
    assert ticket_token(parsed.subject) == ticket
    assert parsed.message_id == made.message_id
    assert parsed.in_reply_to == "m1@x.test"
    assert parsed.references == ("m0@x.test", "m1@x.test")
    assert parsed.sender.email == "help@acme.test"
    assert parsed.text.replace("\r\n", "\n").rstrip() == made.text.rstrip()
