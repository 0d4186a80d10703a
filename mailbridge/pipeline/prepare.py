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
        parsed = parse(raw)
        error = None
    except ParseError as exc:
        parsed, error = None, str(exc)
    except Exception as exc:  # noqa: BLE001 - a parser bug must not lose the message
        parsed, error = None, f"parser failure: {type(exc).__name__}: {exc}"
    kind = classify(parsed, own_addresses) if parsed is not None else None
    return Prepared(raw, parsed, error, kind, fingerprint(parsed, raw))
