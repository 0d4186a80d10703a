"""The fast reading of UID FETCH answers gives what IMAPClient's own parser gives: against a
real Dovecot for what a sync fetches, and on crafted answers for the shapes it hands over."""

from __future__ import annotations

import pytest
from conftest import message
from imapclient.response_parser import parse_fetch_response

from mailbridge.connectors import imap_fetch


def test_sync_fetches_read_as_imapclient_reads_them(dovecot, imap_user) -> None:
    mails = [message(f"Q {i}", body="x" * (i * 700) + "\n") for i in range(5)]
    mails.append(b"Subject: bare\r\n\r\n\x00\xff binary {3}\r\n)")  # looks like syntax
    dovecot.append(imap_user.username, imap_user.password, mails)
    client = dovecot.client(imap_user.username, imap_user.password)
    try:
        client.select_folder("INBOX", readonly=True)
        uids = client.search(["ALL"])
        for items in (["RFC822.SIZE", "INTERNALDATE"], ["BODY.PEEK[]"],
                      ["BODY.PEEK[]<0.1000>"], ["BODY.PEEK[]<1000.1000>"]):
            assert imap_fetch.fetch(client, uids, items) == client.fetch(uids, items), items
        imap = client._imap  # noqa: SLF001 - the raw answer, to see the fast path taken
        typ, data = imap.uid("FETCH", ",".join(map(str, uids)), "(BODY.PEEK[])")
        assert typ == "OK" and imap_fetch.parse(data) is not None
    finally:
        client.logout()


@pytest.mark.parametrize("data", [
    [b'1 (UID 7 RFC822.SIZE 1503 INTERNALDATE "30-Nov-2026 03:32:47 +0300")'],
    [(b"1 (UID 7 BODY[] {3}", b"abc"), b")", (b"2 (BODY[] {2}", b"de"), b" UID 9)"],
    [(b"3 (UID 8 BODY[]<0> {2}", b"ab"), b")"],
    [b'4 (UID 5 INTERNALDATE "not a date")'],
])
def test_simple_answers_are_read_fast_and_alike(data) -> None:
    fast = imap_fetch.parse(data)
    assert fast is not None
    assert fast == dict(parse_fetch_response(data, True, True))


@pytest.mark.parametrize("data", [
    [b"1 (UID 7 FLAGS (\\Seen))"],  # an item a sync does not ask for
    [b"1 (FLAGS (\\Seen))"],  # an unsolicited update without its UID
    [(b"1 (UID 7 BODY[] {4}", b"abc"), b")"],  # the literal is not the size it says
    [b'1 (UID 7 INTERNALDATE "a \\" b")'],  # an escaped quote
    [b"1 (UID 7 BODY[] NIL)"],
    [b"1 (UID 7 RFC822.SIZE 10 )"],
])
def test_anything_else_is_left_to_imapclient(data) -> None:
    assert imap_fetch.parse(data) is None


def test_imaplib_formats_no_protocol_trace_that_nobody_reads(imap_user, caplog) -> None:
    """IMAPClient sets imaplib's debug level to 5 and has its logger drop the lines, but
    imaplib formats each first (the repr of every message fetched: a third of the sync's
    reading). The session turns that off, unless the trace is logged (-vv)."""
    import logging

    from mailbridge.connectors.imap_session import ImapSession, ImapSettings

    settings = ImapSettings(imap_user.host, imap_user.port, "none", imap_user.username,
                            imap_user.password)
    session = ImapSession(settings, "support")
    try:
        assert session.connect()._imap.debug == 0
    finally:
        session.close()
    caplog.set_level(logging.DEBUG, logger="imapclient.imaplib")
    session = ImapSession(settings, "support")
    try:
        assert session.connect()._imap.debug == 5
    finally:
        session.close()
