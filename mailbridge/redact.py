"""Known secret values, and a logging filter that blanks them out of every record."""

from __future__ import annotations

import logging

_SECRETS: set[str] = set()
MASK = "********"


def register(value: str) -> None:
    if len(value) >= 4:  # shorter values would mask ordinary words
        _SECRETS.add(value)


def scrub(text: str) -> str:
    for value in _SECRETS:
        text = text.replace(value, MASK)
    return text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = scrub(record.getMessage())
        record.args = None
        return True
