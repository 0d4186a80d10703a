"""What kind of mail this is, so only mail from people opens tickets and gets answered.

Answering a bounce, an out-of-office reply, a mailing list or our own outgoing mail is how mail
loops start; the checks follow RFC 3834 and RFC 3464 plus the conventions real mailers use.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from mailbridge.domain.message import ParsedMessage, ParseError

HUMAN, AUTO_REPLY, BOUNCE, LIST_BULK, OWN_LOOP = (
    "human", "auto_reply", "bounce", "list_bulk", "own_loop")

_DSN_TYPES = frozenset({"message/delivery-status", "message/global-delivery-status"})
_REPORT_TYPE_RE = re.compile(r"report-type\s*=\s*\"?([\w-]+)", re.I)
_DAEMONS = frozenset({"mailer-daemon", "postmaster"})
_BOUNCE_SUBJECT_RE = re.compile(
    r"undeliver|delivery status notification|fail|returned mail|non-?delivery", re.I)
# English prefixes from the brief, plus the German and French ones Exchange and Outlook send.
_AUTO_SUBJECT_RE = re.compile(
    r"\s*(auto:|automatic reply|out of office|autoreply|auto-reply|automatische antwort"
    r"|abwesenheitsnotiz|réponse automatique)", re.I)
_MDN = "disposition-notification"
_SUPPRESS_TOKENS = frozenset({"all", "oof", "autoreply"})
_BULK_PRECEDENCE = frozenset({"bulk", "list", "junk"})


def classify(msg: ParsedMessage, own_addresses: Iterable[str] = ()) -> str:
    """One of HUMAN, AUTO_REPLY, BOUNCE, LIST_BULK, OWN_LOOP; the first rule that applies wins."""
    own = frozenset(a.strip().lower() for a in own_addresses)
    kind = _classify(msg, own)
    if kind == HUMAN:
        # SpamAssassin's report_safe wraps the original mail as an attachment; the headers that
        # mark it as bulk or automated are on that original, not on the wrapper.
        original = _spam_wrapped_original(msg)
        if original is not None:
            return _classify(original, own)
    return kind


def _classify(msg: ParsedMessage, own: frozenset[str]) -> str:
    headers: dict[str, list[str]] = {}
    for name, value in msg.headers:
        headers.setdefault(name, []).append(value.strip())
    sender = (msg.sender.email if msg.sender else "").strip().lower()
    if (sender and sender in own) or "x-mailbridge-loop" in headers:
        return OWN_LOOP
    if _is_bounce(msg, headers, sender):
        return BOUNCE
    if _is_auto_reply(msg, headers):
        return AUTO_REPLY
    precedence = {v.lower() for v in headers.get("precedence", [])}
    if precedence & _BULK_PRECEDENCE or "list-id" in headers or "list-unsubscribe" in headers:
        return LIST_BULK
    if any(v.replace(" ", "") == "<>" for v in headers.get("return-path", [])):
        # The null reverse-path: only automated mail is sent with it (RFC 5321 4.5.5).
        return AUTO_REPLY
    return HUMAN


def _spam_wrapped_original(msg: ParsedMessage) -> ParsedMessage | None:
    if not any(n == "x-spam-flag" and v.strip().lower() == "yes" for n, v in msg.headers):
        return None
    from mailbridge.domain.parse import parse  # see domain/message.py

    for attachment in msg.attachments:
        if attachment.content_type == "message/rfc822":
            try:
                return parse(attachment.data)
            except ParseError:
                return None
    return None


def _report_type(headers: dict[str, list[str]]) -> str:
    for value in headers.get("content-type", [])[:1]:
        found = _REPORT_TYPE_RE.search(value)
        if found:
            return found.group(1).lower()
    return ""


def _is_bounce(msg: ParsedMessage, headers: dict[str, list[str]], sender: str) -> bool:
    if msg.content_type == "multipart/report" and _report_type(headers) == "delivery-status":
        return True
    if msg.content_type in _DSN_TYPES or any(a.content_type in _DSN_TYPES for a in msg.attachments):
        return True
    local_part = sender.split("@", 1)[0]
    return local_part in _DAEMONS and bool(_BOUNCE_SUBJECT_RE.search(msg.subject))


def _is_auto_reply(msg: ParsedMessage, headers: dict[str, list[str]]) -> bool:
    for value in headers.get("auto-submitted", []):
        # `auto-generated (failure)`, `auto-replied; owner=...`: only the keyword counts.
        keyword = re.split(r"[\s;(]", value, maxsplit=1)[0].lower()
        if keyword and keyword != "no":
            return True
    if "x-autoreply" in headers or "x-autorespond" in headers:
        return True
    for value in headers.get("x-auto-response-suppress", []):
        if {t.strip().lower() for t in value.split(",")} & _SUPPRESS_TOKENS:
            return True
    if any(v.lower() == "auto_reply" for v in headers.get("precedence", [])):
        return True
    # A read receipt (RFC 8098) is as automatic as a vacation notice.
    if msg.content_type == "multipart/report" and _report_type(headers) == _MDN:
        return True
    return bool(_AUTO_SUBJECT_RE.match(msg.subject))
