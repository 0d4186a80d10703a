"""The pure step between fetch and store: parse, classify, fingerprint. Never raises, so one
bad message cannot stop a batch; what failed is carried along and stored with the raw bytes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from mailbridge.domain.classify import classify
from mailbridge.domain.message import ParsedMessage, ParseError
from mailbridge.domain.threading import fingerprint


@dataclass(frozen=True)
class Prepared:
    raw: bytes
    parsed: ParsedMessage | None
    parse_error: str | None
    classification: str | None
    fingerprint: str


def prepare(raw: bytes, own_addresses: Iterable[str] = ()) -> Prepared:
    # Imported here: a cron poll that finds nothing new never loads the parser.
    from mailbridge.domain.parse import parse

    try:
        parsed = parse(raw, attachment_data=False)  # stored as metadata only
    except ParseError as exc:
        return unparsed(raw, str(exc))
    except Exception as exc:  # noqa: BLE001 - a parser bug must not lose the message
        return unparsed(raw, f"parser failure: {type(exc).__name__}: {exc}")
    return Prepared(raw, parsed, None, classify(parsed, own_addresses), fingerprint(parsed, raw))


def unparsed(raw: bytes, error: str) -> Prepared:
    """A message stored raw and flagged with why it was not parsed."""
    return Prepared(raw, None, error, None, fingerprint(None, raw))
