"""Validation of the parsed TOML: every problem is collected, none stops the check early, and
each is reported as `key.path: what is wrong`. Unknown keys are problems too, so a typo never
silently turns a setting off."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from mailbridge.domain.campaigns import EXCHANGE_PER_DAY, EXCHANGE_PER_MINUTE
from mailbridge.domain.checks import (
    DURATION_RE,
    Invalid,
    choice,
    did_you_mean,
    duration,
    email,
    hostname,
    integer,
    label,
    name,
    number,
)
from mailbridge.domain.quotation import SALES_MAILBOXES
from mailbridge.domain.workflow import DEFAULT_PRIORITY, PRIORITIES

REQUIRED = object()
MODES = ("tickets", "engagements", "sales")
DEFAULT_SCHEDULE = {"tickets": "5m", "engagements": "1h", "sales": "10m"}
SECRET_KINDS = ("keyring", "env", "file", "command")
SCHEDULE_EVERY = duration("smhd", timedelta(days=366))

Check = Callable[[Any], Any]


@dataclass(frozen=True)
class Key:
    check: Check | Nested
    default: Any = REQUIRED


def string(allow_empty: bool = True) -> Check:
    def check(v: Any) -> str:
        if not isinstance(v, str):
            raise Invalid("must be a string")
        if not allow_empty and not v.strip():
            raise Invalid("must not be empty")
        return v

    return check


def boolean(v: Any) -> bool:
    if not isinstance(v, bool):
        raise Invalid("must be true or false")
    return v


def string_list(allow_empty: bool = False) -> Check:
    def check(v: Any) -> list[str]:
        if not isinstance(v, list) or not all(isinstance(x, str) and x.strip() for x in v):
            raise Invalid("must be a list of non-empty strings")
        if not v and not allow_empty:
            raise Invalid("must not be empty")
        return list(v)

    return check


def schedule(v: Any) -> str:
    """`5m`, `1h`, `30s`, `1d` (at most a year), or a five-field cron expression that
    APScheduler, which runs it, accepts (imported only for a cron expression: ~70 ms)."""
    if isinstance(v, str) and DURATION_RE.match(v.strip()):
        SCHEDULE_EVERY(v)
        return v.strip()
    if isinstance(v, str) and len(v.split()) == 5:
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(v)
        except ValueError as exc:
            raise Invalid(f"is not a cron expression APScheduler accepts: {exc}") from None
        return v.strip()
    raise Invalid('must be a duration like "5m", "1h" or a cron expression like "*/5 * * * *"')


def timestamp(v: Any) -> str:
    """An ISO 8601 date and time with its offset, e.g. "2026-11-23T09:00:00+00:00"."""
    from datetime import datetime

    if isinstance(v, datetime) and v.tzinfo is not None:
        return v.isoformat()
    try:
        parsed = datetime.fromisoformat(v) if isinstance(v, str) else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise Invalid('must be a date and time with its offset, e.g. "2026-11-23T09:00:00Z"')
    return parsed.isoformat()


def secret(v: Any) -> dict[str, Any]:
    if isinstance(v, str):
        raise Invalid(
            'must be a secret reference such as { keyring = "mailbridge/NAME" }, '
            '{ env = "VAR" }, { file = "/path" } or { command = ["pass", "show", "x"] }, '
            "never the secret itself"
        )
    if not isinstance(v, dict) or len(v) != 1 or next(iter(v)) not in SECRET_KINDS:
        raise Invalid("must be a table with exactly one of " + ", ".join(SECRET_KINDS))
    kind, ref = next(iter(v.items()))
    if kind == "command":
        string_list()(ref)
    elif not isinstance(ref, str) or not ref.strip():
        raise Invalid(f"{kind} must be a non-empty string")
    return {kind: ref}


MAX_PROBLEMS = 30  # then a count: a file of 200 000 unknown keys is not 200 000 lines


class Nested:
    """A check that walks a structure itself and reports each of its problems (a list of
    tables): called with the validator and the path."""

    def __init__(self, walk: Callable[[Validator, str, Any], Any]) -> None:
        self.walk = walk


class Validator:
    """Walks data against key specs, collecting `path: message` problems (the first
    MAX_PROBLEMS of them, and how many more)."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.more = 0

    def problem(self, path: str, message: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(f"{path}: {message}")
        else:
            self.more += 1

    def unknown(self, path: str, key: str, known: Iterable[str]) -> None:
        if len(self.problems) >= MAX_PROBLEMS:  # only counted: skip the "did you mean"
            self.more += 1
            return
        self.problem(f"{path}.{key}", "unknown key" + did_you_mean(key, known))

    def value(self, path: str, check: Check | Nested, v: Any) -> Any:
        if isinstance(check, Nested):
            return check.walk(self, path, v)
        try:
            return check(v)
        except Invalid as exc:
            self.problem(path, str(exc))
            return None

    def table(self, path: str, data: Any, spec: dict[str, Key]) -> dict[str, Any]:
        if not isinstance(data, dict):
            self.problem(path, "must be a table")
            return {}
        out: dict[str, Any] = {}
        for key in data:
            if key not in spec:
                self.unknown(path, key, spec)
        for key, k in spec.items():
            if key in data:
                out[key] = self.value(f"{path}.{key}", k.check, data[key])
            elif k.default is REQUIRED:
                self.problem(f"{path}.{key}", "is required")
            else:
                out[key] = k.default
        return out

    def tagged(self, path: str, data: Any, specs: dict[str, dict[str, Key]]) -> dict[str, Any]:
        """A table whose `type` key picks the spec for the rest of its keys. Without a known
        type, keys that no type has are still reported."""
        if not isinstance(data, dict):
            self.problem(path, "must be a table")
            return {}
        kind = data.get("type")
        if kind not in specs:
            self.problem(f"{path}.type", "must be one of " + ", ".join(f'"{t}"' for t in specs)
                         + did_you_mean(kind, specs))
            every = {"type", *(key for spec in specs.values() for key in spec)}
            for key in data:
                if key not in every:
                    self.unknown(path, key, every)
            return {}
        return self.table(path, data, {"type": Key(string()), **specs[kind]})


def mailbox_list(v: Validator, path: str, value: Any) -> list[dict[str, Any]]:
    """Microsoft 365 mailboxes: addresses, or tables `{ address, enabled, queue, agent,
    matching, match_to }`; returned as tables with every key filled in."""
    if not isinstance(value, list) or not value:
        v.problem(path, "must be a non-empty list of addresses or { address = … } tables")
        return []
    out, seen = [], set()
    for i, item in enumerate(value, 1):
        entry = {"address": item} if isinstance(item, str) else item
        if not isinstance(entry, dict):
            v.problem(path, f"entry {i} must be an address or a table")
            continue
        for key in entry:
            if key not in MAILBOX:
                v.problem(path, f"entry {i}: unknown key {key}{did_you_mean(key, MAILBOX)}")
        filled: dict[str, Any] = dict.fromkeys(MAILBOX)  # None where missing or wrong
        for key, spec in MAILBOX.items():
            try:
                filled[key] = spec.check(entry[key]) if key in entry else spec.default
            except Invalid as exc:
                v.problem(path, f"entry {i} ({key}): {exc}")
        if "address" not in entry:
            v.problem(path, f"entry {i}: address is required")
            filled["address"] = None
        elif filled["address"]:
            filled["address"] = filled["address"].lower()
            if filled["address"] in seen:
                v.problem(path, f"{filled['address']} is listed twice")
            seen.add(filled["address"])
        out.append(filled)
    return out


def route_list(v: Any) -> list[dict[str, Any]]:
    """A Microsoft 365 mailbox's own `routes`, checked like a channel's."""
    if not isinstance(v, list):
        raise Invalid("must be a list of { queue = …, keywords = […] } tables")
    out = []
    for j, route in enumerate(v):
        if not isinstance(route, dict):
            raise Invalid(f"route {j + 1} must be a table")
        unknown = set(route) - set(ROUTE)
        if unknown:
            raise Invalid(f"route {j + 1}: unknown key {sorted(unknown)[0]}")
        filled = {}
        for key, spec in ROUTE.items():
            if key not in route:
                if spec.default is REQUIRED:
                    raise Invalid(f"route {j + 1}: {key} is required")
                filled[key] = spec.default
                continue
            try:
                filled[key] = spec.check(route[key])
            except Invalid as exc:
                raise Invalid(f"route {j + 1} ({key}): {exc}") from None
        out.append(filled)
    return out


SECURITY = choice("ssl", "starttls", "none")
SENDER_KEYS = {
    "from_name": Key(string(), ""),
    "from_email": Key(email, None),
    "bcc": Key(email, None),
}

MAILBOX: dict[str, Key] = {
    "address": Key(email),
    "enabled": Key(boolean, True),
    "queue": Key(name, None),  # Agent Desktop's "Default queue" of this email account
    # its "Additional routing": keyword routes of its own; None means the channel's
    "routes": Key(route_list, None),
    # sales mode: this agent's settings; None means the channel's key of the same name
    "agent": Key(label, None),
    "matching": Key(boolean, None),
    "match_to": Key(choice("opportunities", "projects"), None),
}

INCOMING: dict[str, dict[str, Key]] = {
    # Usedesk's "internal connection": mail is forwarded or piped to us.
    "drop": {"spool": Key(string(allow_empty=False), None)},
    "imap": {
        "host": Key(string(allow_empty=False)),
        "port": Key(integer(1, 65535), None),
        "security": Key(SECURITY, "ssl"),
        "username": Key(string(allow_empty=False)),
        "password": Key(secret),
        "auth": Key(choice("password", "xoauth2"), "password"),
        "ca_file": Key(string(allow_empty=False), None),
        "folders": Key(lambda v: v if v == "*" else string_list()(v), ["INBOX"]),
        "import_read": Key(boolean, False),
        "max_rescan": Key(integer(1, 10_000_000), 1000),
        "max_message_mb": Key(integer(1, 2048), 50),
        "timeout": Key(integer(1, 3600), 60),
    },
    "m365": {
        "app": Key(name),
        "mailboxes": Key(Nested(mailbox_list)),
        "import_read": Key(boolean, False),
        "max_message_mb": Key(integer(1, 2048), 50),
    },
}

OUTGOING: dict[str, dict[str, Key]] = {
    "smtp": {
        "host": Key(string(allow_empty=False)),
        "port": Key(integer(1, 65535), None),
        "security": Key(SECURITY, "starttls"),
        "username": Key(string(), None),
        "password": Key(secret, None),
        "ca_file": Key(string(allow_empty=False), None),
        "timeout": Key(integer(1, 3600), 60),
        **SENDER_KEYS,
    },
    # Usedesk's "internal" outgoing connection: the local MTA sends.
    "sendmail": {
        "command": Key(string_list(), ["/usr/sbin/sendmail", "-oi"]),
        "timeout": Key(integer(1, 3600), 60),
        **SENDER_KEYS,
    },
    "m365": {
        "app": Key(name),
        "mailbox": Key(email),
        "save_to_sent": Key(boolean, True),
        **SENDER_KEYS,
    },
}

ROUTE = {"queue": Key(name), "keywords": Key(string_list()),
         "priority": Key(choice(*PRIORITIES), DEFAULT_PRIORITY)}  # of the tickets it opens

CHANNEL: dict[str, Key] = {
    "name": Key(name),
    "title": Key(string(), None),  # free text shown beside the name; default: the name
    "enabled": Key(boolean, True),
    "host": Key(hostname, None),  # only mailbridge on this host syncs it (a drop spool's)
    "mode": Key(choice(*MODES), "tickets"),
    "schedule": Key(schedule, None),
    "signature": Key(string(), ""),
    "use_common_signature": Key(boolean, False),
    "quoting": Key(choice("none", "send_to_client", "display_and_send"), "display_and_send"),
    "forward_creates_ticket": Key(boolean, True),
    "no_messages_hours": Key(number(0, 24 * 365), 0.0),
    "main_email": Key(email, None),
    "additional_email": Key(email, None),
    "default_queue": Key(name, "general"),
    # engagements mode
    "owner": Key(email, None),
    "owner_aliases": Key(lambda v: [email(x) for x in string_list(allow_empty=True)(v)], []),
    "window_hours": Key(number(1, 24 * 90), 24.0),
    "connected_at": Key(timestamp, None),
    # sales mode (Halo's sales mailboxes; over IMAP the channel is one agent's mailbox)
    "agent": Key(label, ""),
    "matching": Key(boolean, True),
    "match_to": Key(choice("opportunities", "projects"), "opportunities"),
    "matching_type": Key(choice("address_and_subject", "domain"), "address_and_subject"),
    "import_sent_items": Key(boolean, False),
    "hide_email_chain": Key(boolean, False),
}

M365_APP: dict[str, Key] = {
    "name": Key(name),
    "tenant_id": Key(string(allow_empty=False)),
    "client_id": Key(string(allow_empty=False)),
    "auth": Key(choice("app", "delegated"), "app"),
    "client_secret": Key(secret, None),
    "certificate_path": Key(string(allow_empty=False), None),
    "certificate_thumbprint": Key(string(allow_empty=False), None),
    "authority_url": Key(string(allow_empty=False), "https://login.microsoftonline.com"),
    "graph_url": Key(string(allow_empty=False), "https://graph.microsoft.com"),
    "ca_bundle": Key(string(allow_empty=False), None),
    "token_cache": Key(secret, None),
    "token_cache_key": Key(secret, None),
    "shared": Key(boolean, None),
    "timeout": Key(integer(1, 3600), 60),
}

def store_url(v: Any) -> str:
    """`sqlite:///PATH` or `postgresql://user@host/db` (libpq keywords as query parameters);
    never with a password in it."""
    from urllib.parse import urlsplit

    if not isinstance(v, str) or not v.strip():
        raise Invalid('must be a URL like "postgresql://mailbridge@db.example/mailbridge" '
                      'or "sqlite:///var/lib/mailbridge/mailbridge.db"')
    scheme = v.split(":", 1)[0].lower() if ":" in v else ""
    if scheme not in ("sqlite", "postgresql", "postgres"):
        raise Invalid('must start with "sqlite:" or "postgresql://"')
    try:
        has_password = urlsplit(v.strip()).password is not None
    except ValueError:
        raise Invalid("is not a valid URL") from None
    if has_password:
        raise Invalid("must not contain a password: give it as [store] password = "
                      '{ env = "PGPASSWORD" } (or another secret reference)')
    return v.strip()


STORE = {
    "path": Key(string(allow_empty=False), None),
    "url": Key(store_url, None),
    "password": Key(secret, None),
    "lease_seconds": Key(integer(10, 3600), 60),
}
ALERTS = {
    "command": Key(string_list(), None),
    "after_failures": Key(integer(1, 1000), 3),
}
# The pace of `campaigns send` mail from each sales mailbox (defaults: Exchange Online's
# sending limits, domain/campaigns.py).
CAMPAIGNS = {
    "per_minute": Key(integer(1, 1000), EXCHANGE_PER_MINUTE),
    "per_day": Key(integer(1, 1_000_000), EXCHANGE_PER_DAY),
}
# Who "I" am on this machine: the acting agent when neither --as nor MAILBRIDGE_AGENT says.
ME = {"agent": Key(label, None)}


def quotation_from(v: Any) -> str:
    """`"sales_mailboxes"` (each sending agent's own sales mailbox) or one address."""
    if isinstance(v, str) and v.strip() == SALES_MAILBOXES:
        return SALES_MAILBOXES
    try:
        return email(v)
    except Invalid:
        raise Invalid(f'must be "{SALES_MAILBOXES}" or the address of the mailbox that sends '
                      "every quotation") from None


# Who sends quotations (`opportunities quote`; domain/quotation.py has the rules).
SALES = {
    "quotation_from": Key(quotation_from, SALES_MAILBOXES),
    "fallback_mailbox": Key(email, None),
}

def event_kinds(v: Any) -> tuple[str, ...]:
    """A hook's `on`: one event kind or a list of them (store/events.py has the list)."""
    from mailbridge.store.events import KINDS

    given = [v] if isinstance(v, str) else v
    if not isinstance(given, list) or not given or not all(isinstance(k, str) for k in given):
        raise Invalid('must be an event kind or a list of them, e.g. "ticket.created"')
    for kind in given:
        if kind not in KINDS:
            raise Invalid(f"{kind!r} is not an event kind{did_you_mean(kind, KINDS)} "
                          f"(known: {', '.join(KINDS)})")
    return tuple(dict.fromkeys(given))


HOOK = {
    "name": Key(name, None),  # default: the program's file name
    "on": Key(event_kinds),
    "command": Key(string_list()),
    "timeout": Key(integer(1, 86_400), 60),
}
TOP_LEVEL = ("store", "alerts", "me", "sales", "campaigns", "m365", "channel", "hook")
