"""Which mail counts as the same mail, and which conversation a reply belongs to."""

from __future__ import annotations

from conftest import message
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbridge.domain.parse import parse
from mailbridge.domain.threading import fingerprint, related_ids, ticket_token, with_token


def key(raw: bytes) -> str:
    return fingerprint(parse(raw), raw)


def test_two_deliveries_of_one_mail_share_a_fingerprint():
    mail = message("Hello", message_id="one@x")
    via_mx = b"Received: from mx1 by mx2;\n\tMon, 16 Nov 2026\nDelivered-To: a@example.com\n" + mail
    via_imap = (b"Return-Path: <ann@customer.example>\nX-Spam-Status: No\n" + mail
                ).replace(b"\n", b"\r\n")
    assert key(mail) == key(via_mx) == key(via_imap)
    assert key(mail).startswith("mid:one@x#")


def test_different_mail_reusing_a_message_id_is_kept_apart():
    assert key(message("Hello", message_id="one@x")) != key(message("Other", message_id="one@x"))
    assert key(message(body="a")) != key(message(body="b"))


def test_mail_without_message_id_is_keyed_by_content():
    raw = message(message_id=None)
    assert key(raw).startswith("sha256:")
    assert key(raw) == key(b"Received: by relay\n" + raw)
    assert fingerprint(None, raw) == key(raw)


def test_reply_references_nearest_first_and_ticket_tokens():
    parsed = parse(message(extra="In-Reply-To: <c@x>\nReferences: <a@x> <b@x> <c@x>\n"))
    assert related_ids(parsed) == ["c@x", "b@x", "a@x"]
    assert ticket_token("Re: [#42] Printer") == 42
    assert ticket_token("Re: #42 Printer") is None
    assert with_token("Printer", 7) == "[#7] Printer"
    assert with_token("[#7] Printer", 7) == "[#7] Printer"


def test_fingerprints_stay_those_already_stored_whatever_the_chunking(monkeypatch) -> None:
    """The body is hashed in chunks (a large message is never copied whole): the result must
    be the digest stored fingerprints were made with, wherever a chunk ends (inside a CRLF,
    or right after a bare CR)."""
    from mailbridge.domain import threading as threading_module

    raw = (b"Received: from x\r\n\tby y\r\nFrom: a@example.com\r\nMessage-ID: <g@x>\r\n"
           b"Subject: s\r\n\r\nline one\r\r\nline two\r\n\r\n\r\nend\r")
    stored = "sha256:de8b2bcc10483062c307689b9e2fce2f83bc8f1e7bda3be635f57129ead75485"
    for chunk in (1, 2, 3, 5, 1 << 20):
        monkeypatch.setattr(threading_module, "_CHUNK", chunk)
        assert fingerprint(None, raw) == stored


def _plain_digest(raw: bytes) -> str:
    """The content digest as first written (a line at a time): what stored fingerprints are."""
    import hashlib
    import re

    from mailbridge.domain.threading import TRACE_HEADERS

    digest = hashlib.sha256()
    end = re.search(rb"\n\r?\n", raw)
    head = raw[:len(raw) if end is None else end.start() + 1].replace(b"\r\n", b"\n")
    if end is not None:
        head = head[:-1]
    kept, keep = [], True
    for line in head.split(b"\n"):
        if line[:1] not in (b" ", b"\t"):
            field = re.match(rb"([!-9;-~]+)[ \t]*:", line)
            keep = not (field[1].decode().lower() if field else "").startswith(TRACE_HEADERS)
        if keep:
            kept.append(line)
    digest.update(b"\n".join(kept))
    if end is not None:
        digest.update(b"\n\n" + raw[end.end():].replace(b"\r\n", b"\n"))
    return "sha256:" + digest.hexdigest()


_PIECES = [b"Received", b"received-x", b"X-Spam", b"Subject", b"ARC-Seal", b" cont", b"\tcont",
           b"", b"\r", b"Received :", b"Return-Path:x", b"x-gm-z: 1", b"To", b"noColon", b":",
           b"RECEIVED\t:", b"Re\xffceived:", b": v", b" : v\r", b"x: y", b"\n", b"\r\n",
           b"\r\r\n", b"body", b"\n\n"]


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=24))
def test_the_content_digest_is_the_one_fingerprints_were_stored_with(pieces):
    """Trace fields dropped by one pattern and CRLF read by deleting CRs (where each is a
    CRLF's) give the digest of the plain line-by-line reading, for any mix of line ends."""
    raw = b"".join(pieces)
    assert fingerprint(None, raw) == _plain_digest(raw)
