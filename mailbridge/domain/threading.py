"""Which conversation a message belongs to, and how we recognise a message seen before."""

from __future__ import annotations

import hashlib
import re

from mailbridge.domain.message import ParsedMessage

TOKEN_RE = re.compile(r"\[#(\d{1,12})\]")


# Headers each hop or each mailbox adds: two deliveries of one mail differ only in these.
TRACE_HEADERS = ("received", "return-path", "delivered-to", "x-original-to", "x-received",
                 "authentication-results", "arc-", "received-spf", "x-spam", "x-virus",
                 "x-ms-exchange-", "x-forefront-", "x-microsoft-antispam", "x-gm-", "x-mailbridge")


def fingerprint(parsed: ParsedMessage | None, raw: bytes) -> str:
    """The same mail delivered twice (re-piped, CC'd to two of our addresses, re-fetched after
    a crash, read once over IMAP with CRLF and once from a spool with LF) has the same
    Message-ID and the same content apart from trace headers. Broken mailers reuse Message-IDs
    for different mail, so the content is part of the key. No Message-ID: the content alone."""
    digest = _content_digest(raw)
    if parsed is not None and parsed.message_id:
        return f"mid:{parsed.message_id.lower()}#{digest[:16]}"
    return "sha256:" + digest


_HEAD_END_RE = re.compile(rb"\n\r?\n")  # a blank line once CRLF is read as LF
_CHUNK = 1 << 20
# A trace field of the header (TRACE_HEADERS), continuation lines included, after its "\n"
_TRACE_FIELD_RE = re.compile(
    rb"\n(?:" + b"|".join(re.escape(name.encode()) for name in TRACE_HEADERS) +
    rb")[!-9;-~]*[ \t]*:[^\n]*(?:\n[ \t][^\n]*)*(?=\n)", re.IGNORECASE)
_LONE_CR_RE = re.compile(rb"\r(?!\n)")


def _content_digest(raw: bytes) -> str:
    """SHA-256 of the message with LF line ends and without trace headers. The body is hashed
    a megabyte at a time, so a large message is never copied whole."""
    digest = hashlib.sha256()
    end = _HEAD_END_RE.search(raw)
    head_end = len(raw) if end is None else end.start() + 1
    head = _lf(raw[:head_end])
    if end is not None:
        head = head[:-1]  # the line break that the blank line follows is the separator's
    digest.update(_TRACE_FIELD_RE.sub(b"", b"\n" + head + b"\n")[1:-1])
    if end is None:
        return digest.hexdigest()
    digest.update(b"\n\n")
    view, position = memoryview(raw), end.end()
    while position < len(raw):
        stop = min(position + _CHUNK, len(raw))
        while stop < len(raw) and raw[stop - 1] == 0x0D:  # a chunk never ends inside a CRLF
            stop += 1
        digest.update(_lf(bytes(view[position:stop])))
        position = stop
    return digest.hexdigest()


def _lf(data: bytes) -> bytes:
    """`data` with each CRLF read as LF. Where every CR is a CRLF's (mail over IMAP), that is
    deleting every CR, which bytes.replace does eight times as fast as replacing a pair."""
    if _LONE_CR_RE.search(data) is None:
        return data.replace(b"\r", b"")
    return data.replace(b"\r\n", b"\n")


# Reply and forward prefixes of many languages, repeated chains included: "Re: AW: Fwd[2]:"
_PREFIX_RE = re.compile(r"^\s*((re|fwd?|aw|wg|sv|vs|antw|rif|tr)\s*(\[\d+\])?\s*:\s*)+",
                        re.IGNORECASE)


def bare_subject(subject: str) -> str:
    """The subject without our `[#123]` token and without reply/forward prefixes."""
    return _PREFIX_RE.sub("", TOKEN_RE.sub("", subject or "").strip()).strip()


def ticket_token(subject: str) -> int | None:
    """The `[#123]` token our outgoing mail carries in the subject."""
    found = TOKEN_RE.search(subject or "")
    return int(found.group(1)) if found else None


def with_token(subject: str, ticket_id: int) -> str:
    return subject if ticket_token(subject) == ticket_id else f"[#{ticket_id}] {subject}".strip()


def related_ids(parsed: ParsedMessage) -> list[str]:
    """Message-IDs this one answers, nearest first: In-Reply-To, then References newest first."""
    ids = [parsed.in_reply_to] if parsed.in_reply_to else []
    ids += [r for r in reversed(parsed.references) if r not in ids]
    return ids
