"""What a valid value is, for every value a person names or types: one rule per kind, used by
the config loader and the command line alike, so the two never disagree about a queue name,
an address, a number's range or a duration.

A rule returns the value cleaned (stripped, converted) or raises Invalid with a message that
says what is expected without repeating the value (in the config it may be a secret)."""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

from mailbridge.errors import NotFoundError, UsageError

SQL_INT_MAX = 2**63 - 1  # ids and counts: the largest integer SQLite (and PostgreSQL) store
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
HOST_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$")
# No spaces, quotes, brackets, commas or semicolons: what would break a header or a list of
# addresses. (RFC 5322 allows a quoted local part; no mailbox a help desk talks to uses one.)
_ATOM = r"[^@\s<>()\[\]\\,;:\"]+"
EMAIL_RE = re.compile(rf"^{_ATOM}@{_ATOM}\.{_ATOM}$")
# A mail domain as it follows the @ of an address: dot-separated labels of letters, digits and
# inner hyphens (RFC 1035's host names; an internationalised one in its xn-- form).
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
DOMAIN_RE = re.compile(rf"^(?=.{{4,253}}$){_LABEL}(?:\.{_LABEL})+$")
DURATION_RE = re.compile(r"^(\d+)\s*([smhdw])$")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
LABEL_MAX = 200
KNOWN_SHOWN = 12  # "known: …" lists at most this many values


class Invalid(ValueError):
    """A value is wrong; the message says how, without repeating the value."""


Check = Callable[[Any], Any]


def name(v: Any) -> str:
    """A channel, queue or app name: also a folder and a key, so lowercase and plain."""
    if not isinstance(v, str) or not NAME_RE.match(v):
        raise Invalid("must be lowercase letters, digits, '-' or '_' (at most 63)")
    return v


def email(v: Any) -> str:
    if not isinstance(v, str) or not EMAIL_RE.match(v.strip()):
        raise Invalid("must be an e-mail address like support@example.com")
    return v.strip()


def mail_domain(v: Any) -> str:
    """The part of an address after the @ (`acme.com`), in lower case: a client's domain."""
    text = v.strip().lower() if isinstance(v, str) else ""
    if not DOMAIN_RE.match(text):
        hint = (" without the @" if "@" in text else
                " (an internationalised one in its xn-- form)" if not text.isascii() else "")
        raise Invalid(f"must be a mail domain like example.com{hint}")
    return text


def hostname(v: Any) -> str:
    """A host's name as `hostname` prints it (a channel pinned to one host)."""
    if not isinstance(v, str) or not HOST_RE.match(v.strip()):
        raise Invalid('must be a host name as `hostname` prints it, e.g. "mx1"')
    return v.strip()


def label(v: Any) -> str:
    """A name a person gives (an agent, a client, an opportunity type): free text on one
    line, so that it prints in a table row and a mail header."""
    if not isinstance(v, str):
        raise Invalid("must be a string")
    text = v.strip()
    if not text:
        raise Invalid("must not be empty")
    if len(text) > LABEL_MAX:
        raise Invalid(f"must be at most {LABEL_MAX} characters")
    if any(unicodedata.category(c) == "Cc" for c in text):
        raise Invalid("must be one line without tabs or control characters")
    return text


def integer(lo: int, hi: int) -> Check:
    def check(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise Invalid(f"must be an integer {lo}–{hi}")
        return v

    return check


def number(lo: float, hi: float) -> Check:
    def check(v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, int | float) or not lo <= v <= hi:
            raise Invalid(f"must be a number {lo:g}–{hi:g}")
        return float(v)

    return check


def duration(units: str, longest: timedelta) -> Callable[[Any], timedelta]:
    """`30s`, `5m`, `12h`, `7d`, `2w` (the units allowed), from one second to `longest`."""
    examples = ", ".join(f'"{n}{u}"' for n, u in zip((30, 5, 12, 7, 2), "smhdw", strict=True)
                         if u in units)

    def check(v: Any) -> timedelta:
        found = DURATION_RE.match(v.strip()) if isinstance(v, str) else None
        if found and found[2] in units:
            seconds = int(found[1]) * UNIT_SECONDS[found[2]]
            if 1 <= seconds <= longest.total_seconds():
                return timedelta(seconds=seconds)
        raise Invalid(f"must be a duration like {examples}, at most {_span(longest)}")

    return check


def _span(span: timedelta) -> str:
    days = span.days
    return f"{days // 365} years" if days >= 730 else f"{days} days"


def choice(*options: str) -> Check:
    def check(v: Any) -> str:
        if v not in options:
            raise Invalid("must be one of " + ", ".join(f'"{o}"' for o in options)
                          + did_you_mean(v, options))
        return v

    return check


def require(what: str, rule: Check, value: Any) -> Any:
    """`rule(value)`, or a UsageError naming `what` and the value (for a value typed on the
    command line; the config names its key path instead)."""
    try:
        return rule(value)
    except Invalid as exc:
        raise UsageError(f"{what} {shown(str(value))}: {exc}") from None


def refusal(what: str, rule: Check, value: Any) -> str | None:
    """Why `value` (named `what`) breaks `rule`, or None: for a row of a CSV import, which
    is reported with the others rather than raised."""
    if not value:
        return f"no {what}"
    try:
        rule(value)
    except Invalid as exc:
        return f"{what}: {exc}"
    return None


def did_you_mean(value: Any, options: Iterable[str]) -> str:
    """`; did you mean "x"?` for the closest option (case aside), or nothing."""
    if not isinstance(value, str):
        return ""
    folded = {o.casefold(): o for o in options}
    close = difflib.get_close_matches(value.casefold(), list(folded), n=1, cutoff=0.6)
    return f'; did you mean "{folded[close[0]]}"?' if close else ""


def pick(kind: str, value: str, known: Iterable[str], hint: str | None = None) -> str:
    """The known `kind` (channel, queue, agent, client…) that `value` names, ignoring case;
    else a NotFoundError naming the known ones and the closest, so that a typo in a filter
    is an error rather than an empty list."""
    known = sorted(set(known), key=str.casefold)
    for candidate in known:
        if candidate.casefold() == value.strip().casefold():
            return candidate
    listed = ", ".join(known[:KNOWN_SHOWN])
    if len(known) > KNOWN_SHOWN:
        listed += f" and {len(known) - KNOWN_SHOWN} more"
    raise NotFoundError(f"no {kind} called {shown(value)}{did_you_mean(value, known)} "
                        f"(known: {listed or 'none yet'})", hint)


def shown(value: str) -> str:
    """A typed value as it may be printed: quoted and escaped when it holds control
    characters (a tab, a newline, a terminal escape)."""
    return value if value.isprintable() else repr(value)
