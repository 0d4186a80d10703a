"""Which conversation a message belongs to, and how we recognise a message seen before."""

from __future__ import annotations

import hashlib
import re

from mailbridge.domain.parse import ParsedMessage

TOKEN_RE = re.compile(r"\[#(\d{1,12})\]")


def fingerprint(parsed: ParsedMessage | None, raw: bytes) -> str:
    """The same mail delivered twice (re-piped, CC'd to two of our addresses, re-fetched after
    a crash) has the same Message-ID, sender and Date, though its trace headers differ. The
    sender and Date are part of the key because broken mailers reuse Message-IDs for different
    mail, which must not be merged. Mail without a Message-ID falls back to its exact bytes."""
    if parsed is not None and parsed.message_id:
        sender = parsed.sender.email.lower() if parsed.sender else ""
        sent = parsed.date.isoformat() if parsed.date else ""
        origin = hashlib.sha256(f"{sender}\n{sent}".encode()).hexdigest()[:16]
        return f"mid:{parsed.message_id.lower()}#{origin}"
    return "sha256:" + hashlib.sha256(raw).hexdigest()


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
