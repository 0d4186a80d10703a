import pytest
from conftest import CORPUS, needs_corpus

from mailbridge.domain.classify import AUTO_REPLY, BOUNCE, HUMAN, LIST_BULK, OWN_LOOP, classify
from mailbridge.domain.parse import parse


def kind(*header_lines: str, body: str = "Hello,\n\nplease help.\n", own: tuple = ()) -> str:
    raw = ("\n".join(header_lines) + "\n\n" + body).encode()
    return classify(parse(raw), own)


def corpus_kind(relative: str) -> str:
    return classify(parse((CORPUS / relative).read_bytes()))


# --------------------------------------------------------------------------- human


def test_plain_customer_mail_is_human() -> None:
    assert kind("From: Jane <jane@example.com>", "To: support@example.org",
                "Subject: Printer broken") == HUMAN


def test_auto_submitted_no_is_human() -> None:
    assert kind("From: jane@example.com", "Auto-Submitted: no", "Subject: hi") == HUMAN


@needs_corpus
@pytest.mark.parametrize("name", ["zammad/mail/mail001.eml", "zammad/mail/mail004.eml",
                                  "zammad/extra/ticket_trigger-mail1.eml"])
def test_corpus_people_are_human(name: str) -> None:
    assert corpus_kind(name) == HUMAN


@needs_corpus
@pytest.mark.parametrize("name", ["mail019.eml", "mail035.eml"])
def test_mbox_envelope_from_mailer_daemon_is_not_a_bounce(name: str) -> None:
    # The corpus notes: only the mbox `From MAILER-DAEMON` envelope line looks like a bounce.
    assert corpus_kind(f"zammad/mail/{name}") != BOUNCE


# --------------------------------------------------------------------------- own loop


def test_own_address_is_a_loop() -> None:
    assert kind("From: Support <Support@Example.org>", "Subject: [#12] Re: hi",
                own=("support@example.org",)) == OWN_LOOP


def test_loop_header_is_a_loop_even_if_it_looks_like_a_bounce() -> None:
    assert kind("From: MAILER-DAEMON@example.com", "Subject: Undelivered Mail",
                "X-Mailbridge-Loop: 1") == OWN_LOOP


# --------------------------------------------------------------------------- bounce

_DSN = (
    "From: Mail Delivery System <MAILER-DAEMON@mx.example.com>",
    "Subject: Delivery report",
    "Auto-Submitted: auto-replied",
    'Content-Type: multipart/report; report-type=delivery-status; boundary="b"',
)
_DSN_BODY = (
    "--b\nContent-Type: text/plain\n\nCould not deliver.\n"
    "--b\nContent-Type: message/delivery-status\n\n"
    "Reporting-MTA: dns; mx.example.com\n\nFinal-Recipient: rfc822; x@example.net\n"
    "Action: failed\nStatus: 5.1.1\n--b--\n"
)


def test_multipart_report_delivery_status_is_a_bounce() -> None:
    assert kind(*_DSN, body=_DSN_BODY) == BOUNCE


def test_delivery_status_part_without_report_type_is_a_bounce() -> None:
    headers = (*_DSN[:3], 'Content-Type: multipart/mixed; boundary="b"')
    assert kind(*headers, body=_DSN_BODY) == BOUNCE


def test_postmaster_with_failure_subject_is_a_bounce() -> None:
    assert kind("From: postmaster@example.com",
                "Subject: Undeliverable: your message") == BOUNCE
    assert kind("From: postmaster@example.com", "Subject: Our opening hours") != BOUNCE


@needs_corpus
@pytest.mark.parametrize("name", [
    "zammad/mail/mail018.eml",
    "zammad/mail/mail033-undelivered-mail-returned-to-sender.eml",
    "zammad/mail/mail052.eml",
    "zammad/mail/mail053.eml",
    "zammad/mail/mail055.eml",
    "zammad/mail/mail063.eml",
    "zammad/mail/mail078.eml",
    "zammad/mail/mail092.eml",
    "more/mail/cpython-msg_05.eml",
    "more/mail/cpython-msg_25.eml",
    "more/mail/cpython-msg_43.eml",
    "more/mail/flanker-bounce-broken-mime.eml",
    "more/mail/flanker-bounce-delayed-broken.eml",
    "more/mail/flanker-bounce-gmail-invalid-address.eml",
    "more/mail/flanker-bounce-mailbox-full.eml",
    "more/mail/flanker-bounce-office365.eml",
    "more/mail/flanker-bounce-zed.eml",
    "more/mail/mailparser-mail_malformed_2.eml",
])
def test_corpus_bounces(name: str) -> None:
    assert corpus_kind(name) == BOUNCE


# --------------------------------------------------------------------------- auto reply


@pytest.mark.parametrize("headers", [
    ("Auto-Submitted: auto-replied",),
    ("Auto-Submitted: auto-generated (failure)",),
    ("X-Autoreply: yes",),
    ("X-Autorespond: vacation",),
    ("X-Auto-Response-Suppress: DR, OOF",),
    ("Precedence: auto_reply",),
    ("Return-Path: <>",),
])
def test_auto_reply_headers(headers: tuple[str, ...]) -> None:
    assert kind("From: jane@example.com", "Subject: hi", *headers) == AUTO_REPLY


@pytest.mark.parametrize("subject", [
    "Auto: Re: your ticket", "Automatic reply: Printer", "Out of Office until Monday",
    "AutoReply: thanks",
])
def test_auto_reply_subjects(subject: str) -> None:
    assert kind("From: jane@example.com", f"Subject: {subject}") == AUTO_REPLY


def test_auto_reply_wins_over_bulk() -> None:
    assert kind("From: jane@example.com", "Auto-Submitted: auto-replied",
                "Precedence: bulk") == AUTO_REPLY


@needs_corpus
@pytest.mark.parametrize("name", ["mail089.eml", "mail090.eml"])
def test_corpus_servicenow_notifications_are_auto_generated(name: str) -> None:
    assert corpus_kind(f"zammad/mail/{name}") == AUTO_REPLY


# --------------------------------------------------------------------------- list / bulk


@pytest.mark.parametrize("headers", [
    ("Precedence: bulk",),
    ("Precedence: list",),
    ("Precedence: junk",),
    ("List-Id: <users.lists.example.org>",),
    ("List-Unsubscribe: <mailto:leave@lists.example.org>",),
])
def test_list_and_bulk_headers(headers: tuple[str, ...]) -> None:
    assert kind("From: news@example.com", "Subject: Newsletter", *headers) == LIST_BULK


@needs_corpus
@pytest.mark.parametrize("name", [
    "zammad/mail/mail043.eml",
    "zammad/mail/mail069.eml",  # bulk headers sit on the original inside a SpamAssassin report
    "zammad/extra/ticket_trigger-mail2.eml",
])
def test_corpus_bulk(name: str) -> None:
    assert corpus_kind(name) == LIST_BULK
