"""The validated configuration as typed objects, built from checked TOML data."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailbridge.config import paths
from mailbridge.config.schema import DEFAULT_SCHEDULE
from mailbridge.domain.campaigns import Pace
from mailbridge.domain.checks import pick
from mailbridge.domain.quotation import SALES_MAILBOXES
from mailbridge.domain.routing import Route


@dataclass(frozen=True)
class Channel:
    name: str
    title: str  # Usedesk's "Channel name" as people read it ("Support Desk"); default: name
    enabled: bool
    host: str | None  # only mailbridge on this host syncs it (a drop spool is a local folder)
    mode: str
    schedule: str
    signature: str
    use_common_signature: bool
    quoting: str
    forward_creates_ticket: bool
    no_messages_hours: float
    main_email: str | None
    additional_email: str | None
    default_queue: str
    owner: str | None
    owner_aliases: list[str]
    window_hours: float
    connected_at: str | None
    agent: str
    matching: bool
    match_to: str
    matching_type: str
    import_sent_items: bool
    hide_email_chain: bool
    routes: tuple[Route, ...]
    incoming: dict[str, Any]
    outgoing: dict[str, Any] | None
    apps: dict[str, dict[str, Any]] = field(default_factory=dict)  # the [[m365]] entries used

    @property
    def syncs_here(self) -> bool:
        """Whether this host syncs the channel (any host, unless `host` names one)."""
        import socket

        return self.host is None or self.host.lower() == socket.gethostname().lower()

    @property
    def mailboxes(self) -> list[dict[str, Any]]:
        """Microsoft 365 channels: every configured mailbox ({address, enabled, queue, and
        the sales keys agent, matching, match_to: None where the channel's apply})."""
        return list(self.incoming.get("mailboxes") or [])

    @property
    def sends_as_mailboxes(self) -> bool:
        """A Microsoft 365 sales channel sends each agent's mail as that agent's own mailbox
        (`opportunities reply`), with or without an outgoing table."""
        return self.mode == "sales" and self.incoming.get("type") == "m365"

    @property
    def own_addresses(self) -> tuple[str, ...]:
        """Addresses mail from which is our own (loop protection)."""
        found = [self.main_email, self.additional_email]
        if self.outgoing:
            found.append(self.outgoing.get("from_email"))
        return tuple(a.lower() for a in found if a)

    @property
    def owner_addresses(self) -> tuple[str, ...]:
        """Engagements mode: the mailbox owner's addresses (default: the mailbox itself, or
        each Microsoft 365 mailbox of the channel)."""
        mailboxes = [m["address"] for m in self.mailboxes]  # Microsoft 365: each its own
        found = [*([self.owner] if self.owner else mailboxes
                   or [default_owner(self.incoming.get("username"), self.main_email)]),
                 *self.owner_aliases]
        return tuple(a.lower() for a in found if a and "@" in a)

    @property
    def spool(self) -> Path:
        return Path(self.incoming.get("spool") or paths.default_spool_dir(self.name)).expanduser()


def default_owner(username: str | None, main_email: str | None) -> str | None:
    """Whose mailbox an IMAP or drop channel reads when `owner` is not set: the login name
    if it is an address, else main_email."""
    return next((a for a in (username, main_email) if a and "@" in a), None)


@dataclass(frozen=True)
class StoreSettings:
    """Where the store is: a SQLite file (the default) or a PostgreSQL database. Meets the
    store's StoreTarget: the password is read from its secret reference only when a
    connection is made."""

    url: str
    password_ref: dict[str, Any] | None = None
    lease_seconds: int = 60

    @property
    def kind(self) -> str:
        return "sqlite" if self.url.lower().startswith("sqlite:") else "postgresql"

    @property
    def path(self) -> Path | None:
        """The SQLite file, or None for a database server. `sqlite:///var/x.db` and
        SQLAlchemy's `sqlite:////var/x.db` both name /var/x.db; `sqlite:x.db` is relative."""
        if self.kind != "sqlite":
            return None
        from urllib.parse import unquote, urlsplit

        path = unquote(urlsplit(self.url).path)
        if path.startswith("//"):
            path = "/" + path.lstrip("/")
        return Path(path).expanduser()

    def password(self) -> str | None:
        if self.password_ref is None:
            return None
        from mailbridge.config.secrets import resolve

        return resolve(self.password_ref)

    @classmethod
    def sqlite(cls, path: Path) -> StoreSettings:
        return cls("sqlite://" + str(Path(path).expanduser().absolute()))

    def __str__(self) -> str:
        return str(self.path) if self.path else self.url


@dataclass(frozen=True)
class AlertSettings:
    command: tuple[str, ...] = ()  # gets each alert as JSON on stdin
    after_failures: int = 3  # consecutive failed syncs before a channel is "failing"
    # sends alert mail for channels without an outgoing connection (smtp, sendmail or m365)
    outgoing: dict[str, Any] | None = None
    apps: dict[str, dict[str, Any]] = field(default_factory=dict)  # its [[m365]] entry

    @property
    def from_email(self) -> str | None:
        out = self.outgoing or {}
        return out.get("from_email") or out.get("mailbox")


@dataclass(frozen=True)
class Hook:
    """A `[[hook]]`: `command` runs for each event of the kinds `on`, the event on stdin."""

    name: str
    on: tuple[str, ...]
    command: tuple[str, ...]
    timeout: int


@dataclass(frozen=True)
class SalesSettings:
    """[sales]: who sends quotations (domain/quotation.py has the rules)."""

    quotation_from: str = SALES_MAILBOXES  # or the one address that sends every quotation
    fallback_mailbox: str | None = None  # for an agent without a sales mailbox of their own


@dataclass(frozen=True)
class Config:
    path: Path
    store: StoreSettings
    channels: tuple[Channel, ...] = ()
    m365: tuple[dict[str, Any], ...] = ()
    alerts: AlertSettings = AlertSettings()
    hooks: tuple[Hook, ...] = ()
    me_agent: str | None = None  # [me] agent: who "I" am (see services/agents.acting)
    sales: SalesSettings = SalesSettings()
    pace: Pace = Pace()  # [campaigns]: how fast campaign mail leaves each mailbox
    data: dict[str, Any] = field(default_factory=dict, repr=False)

    def channel(self, name: str) -> Channel | None:
        return next((c for c in self.channels if c.name == name), None)

    def require(self, name: str) -> Channel:
        """The channel called `name` (ignoring case), else a NotFoundError with the closest."""
        found = pick("channel", name, [c.name for c in self.channels],
                     "see `mailbridge channels list`")
        return next(c for c in self.channels if c.name == found)

    def agents(self) -> set[str]:
        """The sales agents the config names (a Microsoft 365 mailbox without one is its
        own agent)."""
        return {a for c in self.channels if c.mode == "sales"
                for a in (c.agent, *(m.get("agent") or c.agent or m["address"]
                                     for m in c.mailboxes)) if a}

    def queues(self) -> set[str]:
        """The queues the config names: each channel's default, its routes' and its
        mailboxes' (more exist in the store, made by `tickets move`)."""
        return {q for c in self.channels
                for q in (c.default_queue, *(r.queue for r in c.routes),
                          *(m.get("queue") for m in c.mailboxes))
                if q}


def route(data: dict[str, Any]) -> Route:
    """A checked route table (a channel's, or a Microsoft 365 mailbox's own)."""
    return Route(data["queue"], tuple(data["keywords"]), data["priority"])


def build_channel(data: dict[str, Any]) -> Channel:
    routes = tuple(route(r) for r in data.get("routes") or ())
    values = {k: v for k, v in data.items() if k != "routes"}
    values["schedule"] = values.get("schedule") or DEFAULT_SCHEDULE[values["mode"]]
    values["title"] = (values.get("title") or "").strip() or values["name"]
    return Channel(routes=routes, **values)
