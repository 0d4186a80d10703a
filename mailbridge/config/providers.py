"""Known mail providers (providers.toml) and, for other domains, the server names to try.
The guesses are only ever used after a connection test confirms them."""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass
from importlib import resources

SECURITY_PORTS = {"ssl": 993, "starttls": 143}
SMTP_SECURITY_PORTS = {"ssl": 465, "starttls": 587}


@dataclass(frozen=True)
class Server:
    host: str
    port: int
    security: str


@dataclass(frozen=True)
class Provider:
    name: str
    domains: tuple[str, ...]
    imap: Server
    smtp: Server
    password_note: str = ""


@functools.cache
def providers() -> tuple[Provider, ...]:
    text = resources.files("mailbridge.config").joinpath("providers.toml").read_text("utf-8")
    return tuple(
        Provider(p["name"], tuple(p["domains"]), Server(**p["imap"]), Server(**p["smtp"]),
                 p.get("password_note", ""))
        for p in tomllib.loads(text)["provider"])


def domain_of(email: str) -> str:
    return email.rpartition("@")[2].strip().lower()


def lookup(email: str) -> Provider | None:
    domain = domain_of(email)
    return next((p for p in providers() if domain in p.domains), None)


def guesses(email: str) -> list[Provider]:
    """The usual names for a domain's own servers, most likely first: imap./smtp., then
    mail. for both; implicit TLS before STARTTLS."""
    domain = domain_of(email)
    found = []
    for imap_name, smtp_name in (("imap", "smtp"), ("mail", "mail")):
        for security in ("ssl", "starttls"):
            found.append(Provider(
                f"{imap_name}.{domain} (guessed)", (domain,),
                Server(f"{imap_name}.{domain}", SECURITY_PORTS[security], security),
                Server(f"{smtp_name}.{domain}", SMTP_SECURITY_PORTS[security], security)))
    return found
