"""Known secret values, masked in what servers and libraries say about the calls that carried
them: the error texts a connector quotes (imap_session, smtp, graph) and the libraries' own
log lines. mailbridge's own words (channel, user and file names) are never searched, so a
name that happens to equal a password is shown as it is."""

from __future__ import annotations

import logging

_SECRETS: set[str] = set()
MASK = "********"


def register(value: str) -> None:
    if len(value) >= 4:  # shorter values would mask ordinary words
        _SECRETS.add(value)


def scrub(text: str) -> str:
    """`text` from a server or library with every known secret masked."""
    for value in _SECRETS:
        text = text.replace(value, MASK)
    return text


class RedactingFilter(logging.Filter):
    """Masks secrets in the records of libraries' loggers (a wire log, an error that quotes
    a command); mailbridge's own records quote server text only through `scrub`."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name != "mailbridge" and not record.name.startswith("mailbridge."):
            record.msg = scrub(record.getMessage())
            record.args = None
        return True
