"""Outgoing mail, composed in pure code: the signature (formatted by signature.py) and
quoting rules of the product documents, the threading headers that bring the client's answer
back to its ticket, and one copy per recipient (Usedesk sends each recipient their own
mail)."""

from __future__ import annotations

import html
import mimetypes
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.header import Header
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr

from mailbridge.domain.signature import Signature, render_signature
from mailbridge.domain.threading import bare_subject, with_token

_ID_PREFIX = "mb."  # our Message-IDs: mb.<ticket>.<unique>@<channel's domain>
MAX_QUOTED = 30  # the product documents: at most the 30 latest messages of the correspondence
@dataclass(frozen=True)
class Quoted:
    """One earlier message of the conversation, as the quote shows it."""

    name: str
    email: str
    sent_at: datetime | None
    text: str


@dataclass(frozen=True)
class Attachment:
    filename: str
    data: bytes
    content_type: str = ""


@dataclass(frozen=True)
class Draft:
    ticket: int | None  # None: not about a ticket (alerts, test mail): no token, no prefix
    subject: str  # the ticket's subject; prefix and token are added here
    body: str  # what the agent wrote
    from_name: str
    from_email: str
    recipients: tuple[str, ...]  # each gets their own copy
    signature: str = ""
    history: tuple[Quoted, ...] = ()  # newest first
    quote: bool = True  # append the history to the mail the client receives
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    reply_to: str | None = None
    attachments: tuple[Attachment, ...] = ()
    prefix: str = "Re"  # "Re" for replies, "Fwd" for forwards
    automatic: bool = False  # alerts, notices: RFC 3834 Auto-Submitted
    headers: tuple[tuple[str, str], ...] = ()  # more header fields (a campaign's List-*)


@dataclass(frozen=True)
class Composed:
    message_id: str  # without angle brackets
    subject: str
    text: str  # the plain-text body as sent (agent text, signature, quote)
    unquoted: str  # the same without the quoted history
    copies: tuple[tuple[str, bytes], ...]  # (recipient, raw message)


def choose_signature(agent_signature: str, channel_signature: str,
                     use_common_signature: bool) -> str:
    """The agent's personal signature wins; else the channel's common one when it is on."""
    if agent_signature.strip():
        return agent_signature
    return channel_signature if use_common_signature and channel_signature.strip() else ""


def subject_for(subject: str, ticket: int, prefix: str) -> str:
    """`[#12] Re: Printer broken`: one prefix however long the chain was, one token."""
    base = " ".join(bare_subject(subject).split()) or "(no subject)"  # one line, plain spaces
    return with_token(f"{prefix}: {base}", ticket)


def message_id(ticket: int | None, unique: str, domain: str) -> str:
    """On the channel's domain, carrying the ticket so a reply threads even without a stored
    copy of what it answers."""
    return f"{_ID_PREFIX}{ticket if ticket is not None else 'notice'}.{unique}@" \
           f"{domain or 'mailbridge.invalid'}"


def may_be_ours(message_id: str | None) -> bool:
    """Whether a Message-ID has the form of those `message_id` makes (a cheap test before
    the store is asked)."""
    return bool(message_id) and message_id.startswith(_ID_PREFIX)


def quote_text(history: Sequence[Quoted]) -> str:
    blocks = []
    for item in history[:MAX_QUOTED]:
        who = item.name or item.email or "someone"
        when = format_datetime(item.sent_at) if item.sent_at else "an earlier date"
        lines = (item.text or "").rstrip().split("\n")
        blocks.append(f"On {when}, {who} wrote:\n" + "\n".join(
            f"> {line}" if line else ">" for line in lines))
    return "\n\n".join(blocks)


def transcript(items: Sequence[Quoted]) -> str:
    """The correspondence in the order given, as plain text: a forward's ticket comment."""
    blocks = []
    for item in items:
        who = f"{item.name} <{item.email}>" if item.name and item.email else (
            item.name or item.email or "someone")
        when = format_datetime(item.sent_at) if item.sent_at else "an earlier date"
        blocks.append(f"--- {who}, {when}\n{(item.text or '').rstrip()}")
    return "\n\n".join(blocks)


def compose(draft: Draft, unique: str, domain: str) -> Composed:
    mid = message_id(draft.ticket, unique, domain)
    subject = (draft.subject if draft.ticket is None
               else subject_for(draft.subject, draft.ticket, draft.prefix))
    sig = render_signature(draft.signature) if draft.signature.strip() else None
    parts = [draft.body.rstrip()]
    if sig:
        parts.append(sig.text.rstrip())
    unquoted = "\n\n".join(parts) + "\n"
    quoted = quote_text(draft.history) if draft.quote and draft.history else ""
    text = f"{unquoted}\n{quoted}\n" if quoted else unquoted
    markup = _html(draft, sig, quoted)
    copies = []
    for recipient in draft.recipients:
        msg = EmailMessage(policy=SMTP)
        msg["From"] = _FROM_SLOT
        msg["To"] = recipient
        msg["Subject"] = _SUBJECT_SLOT
        msg["Message-ID"] = f"<{mid}>"
        msg["Date"] = format_datetime(datetime.now().astimezone())
        if draft.reply_to:
            msg["Reply-To"] = draft.reply_to
        if draft.in_reply_to:
            msg["In-Reply-To"] = f"<{draft.in_reply_to}>"
        refs = [*draft.references, *([draft.in_reply_to] if draft.in_reply_to else [])]
        if refs:
            msg["References"] = " ".join(f"<{r}>" for r in dict.fromkeys(refs))
        if draft.automatic:
            msg["Auto-Submitted"] = "auto-generated"
        if draft.ticket is not None:
            msg["X-Mailbridge-Ticket"] = str(draft.ticket)
        for header, value in draft.headers:
            msg[header] = value
        msg.set_content(text)
        msg.add_alternative(markup, subtype="html")
        for attachment in draft.attachments:
            maintype, subtype = _content_type(attachment).split("/", 1)
            msg.add_attachment(attachment.data, maintype=maintype, subtype=subtype,
                               filename=attachment.filename)
        copies.append((recipient, _fill_slots(msg.as_bytes(), subject, draft)))
    return Composed(mid, subject, text, unquoted, tuple(copies))


# The stdlib's folding drops a space that falls between two encoded words (RFC 2047 readers
# ignore whitespace there), e.g. in long non-ASCII subjects; found by a property test. The
# subject and the From name are encoded with email.header instead, which keeps spaces inside
# the encoded text, and put in place of these slots after serialising.
_SUBJECT_SLOT, _FROM_SLOT = "mailbridge-subject-slot", "mailbridge-from@slot.invalid"


def _fill_slots(raw: bytes, subject: str, draft: Draft) -> bytes:
    head, sep, body = raw.partition(b"\r\n\r\n")
    name = Header(draft.from_name, "utf-8").encode(linesep="\r\n") \
        if draft.from_name and not draft.from_name.isascii() else None
    sender = (f"{name} <{draft.from_email}>" if name
              else formataddr((draft.from_name, draft.from_email)))
    head = head.replace(f"Subject: {_SUBJECT_SLOT}".encode(), b"Subject: " + _encoded(subject))
    head = head.replace(f"From: {_FROM_SLOT}".encode(), b"From: " + sender.encode("ascii"))
    return head + sep + body


def _encoded(text: str) -> bytes:
    charset = "us-ascii" if text.isascii() else "utf-8"
    return Header(text, charset, header_name="Subject").encode(linesep="\r\n").encode("ascii")


def _content_type(attachment: Attachment) -> str:
    if "/" in attachment.content_type:
        return attachment.content_type
    guessed, _ = mimetypes.guess_type(attachment.filename)
    return guessed or "application/octet-stream"


def _paragraphs(text: str) -> str:
    return "<br>\n".join(html.escape(line) for line in text.rstrip().split("\n"))


def _html(draft: Draft, sig: Signature | None, quoted: str) -> str:
    body = [f"<div>{_paragraphs(draft.body)}</div>"]
    if sig:
        body.append(f'<div class="signature">{sig.html or _paragraphs(sig.text)}</div>')
    if quoted:
        for item in draft.history[:MAX_QUOTED]:
            who = html.escape(item.name or item.email or "someone")
            when = format_datetime(item.sent_at) if item.sent_at else "an earlier date"
            body.append(f"<div>On {html.escape(when)}, {who} wrote:</div>"
                        f'<blockquote style="margin:0 0 0 .8ex;border-left:1px solid #ccc;'
                        f'padding-left:1ex">{_paragraphs(item.text or "")}</blockquote>')
    return "<!DOCTYPE html>\n<html><body>\n" + "\n<br>\n".join(body) + "\n</body></html>\n"
