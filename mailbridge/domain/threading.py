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
_FIELD_RE = re.compile(rb"^([!-9;-~]+)[ \t]*:", re.MULTILINE)


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


def _content_digest(raw: bytes) -> str:
    """SHA-256 of the message with LF line ends and without trace headers. The body is hashed
    a megabyte at a time, so a large message is never copied whole."""
    digest = hashlib.sha256()
    end = _HEAD_END_RE.search(raw)
    head_end = len(raw) if end is None else end.start() + 1
    head = raw[:head_end].replace(b"\r\n", b"\n")
    if end is not None:
        head = head[:-1]  # the line break that the blank line follows is the separator's
    kept, keep = [], True
    for line in head.split(b"\n"):
        if line[:1] not in (b" ", b"\t"):  # a new field; continuation lines follow their field
            field = _FIELD_RE.match(line)
            name = field.group(1).decode("ascii").lower() if field else ""
            keep = not name.startswith(TRACE_HEADERS)
        if keep:
            kept.append(line)
    digest.update(b"\n".join(kept))
    if end is None:
        return digest.hexdigest()
    digest.update(b"\n\n")
    view, position = memoryview(raw), end.end()
    while position < len(raw):
        stop = min(position + _CHUNK, len(raw))
        while stop < len(raw) and raw[stop - 1] == 0x0D:  # a chunk never ends inside a CRLF
            stop += 1
        digest.update(bytes(view[position:stop]).replace(b"\r\n", b"\n"))
        position = stop
    return digest.hexdigest()


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
