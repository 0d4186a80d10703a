"""What parsing a message yields: plain data, cheap to import and to pickle (the parser
itself, with its tables and patterns, is loaded only where mail is parsed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Address:
    name: str
    email: str


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    size: int
    sha256: str
    content_id: str | None
    inline: bool
    data: bytes = field(repr=False)


@dataclass(frozen=True)
class ParsedMessage:
    subject: str
    sender: Address | None
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    reply_to: tuple[Address, ...]
    message_id: str | None
    in_reply_to: str | None
    references: tuple[str, ...]
    date: datetime | None
    text: str
    html: str | None
    attachments: tuple[Attachment, ...]
    headers: tuple[tuple[str, str], ...]
    content_type: str
    defects: tuple[str, ...]


class ParseError(Exception):
    """Nothing usable could be obtained from the input."""
