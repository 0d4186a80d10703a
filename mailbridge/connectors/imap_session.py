"""One IMAP connection: TLS, login, folder selection, and the translation of every library and
socket failure into a mailbridge error that names the server and what to do."""

from __future__ import annotations

import contextlib
import imaplib
import logging
import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from imapclient import IMAPClient, SocketTimeout
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError

from mailbridge import redact
from mailbridge.domain.folders import Folder as FolderInfo
from mailbridge.domain.folders import skipped
from mailbridge.errors import (
    AuthError,
    NetworkError,
    RemoteError,
    TemporaryError,
    TlsError,
    UsageError,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_PORTS = {"ssl": 993, "starttls": 143, "none": 143}
UNSELECTABLE = {b"\\noselect", b"\\nonexistent"}
# Gmail keeps its system folders in one of these; the folders in it count as top-level.
CONTAINERS = ("[Gmail]", "[Google Mail]")
# A connection that broke mid-command: worth one more try on a fresh connection.
DROPPED = (IMAPClientAbortError, imaplib.IMAP4.abort, ConnectionError, socket.timeout,
           ssl.SSLEOFError, EOFError)


@dataclass(frozen=True)
class ImapSettings:
    host: str
    port: int
    security: str  # ssl | starttls | none
    username: str
    secret: str  # the password, or an OAuth access token when auth == "xoauth2"
    auth: str = "password"
    folders: tuple[str, ...] | str = ("INBOX",)
    import_read: bool = False
    mark_seen: bool = True
    max_rescan: int = 1000
    max_message_mb: int = 50
    timeout: int = 60
    ca_file: str | None = None
    retries: int = 3
    # Engagements and sales: every message that arrived since then (INTERNALDATE), read or
    # not.
    since: datetime | None = None
    mode: str = "tickets"  # which folders "*" reads (domain/folders.py)


@dataclass(frozen=True)
class Folder:
    name: str
    flags: tuple[str, ...]
    selectable: bool
    synced: bool  # named in folders, or chosen by folders = "*"
    skipped: str | None = None  # folders = "*": why this folder is never read


class ImapSession:
    """A logged-in connection that reconnects (a bounded number of times) when it drops."""

    def __init__(self, settings: ImapSettings, channel: str) -> None:
        self.settings = settings
        self.channel = channel
        self.client: IMAPClient | None = None
        self.selected: str | None = None
        self.uidvalidity: int | None = None
        self.validities: dict[str, int] = {}  # first UIDVALIDITY seen per folder this session

    @property
    def where(self) -> str:
        return f"channel {self.channel}: {self.settings.host}:{self.settings.port}"

    def connect(self) -> IMAPClient:
        if self.client is None:
            with self.translated():
                self.client = self._login()
            self.selected = None
        return self.client

    def _login(self) -> IMAPClient:
        s = self.settings
        context = tls_context(s.ca_file) if s.security != "none" else None
        client = IMAPClient(s.host, s.port, ssl=s.security == "ssl", ssl_context=context,
                            timeout=SocketTimeout(connect=min(s.timeout, 30), read=s.timeout))
        if not logging.getLogger("imapclient.imaplib").isEnabledFor(logging.DEBUG):
            # IMAPClient sets imaplib's debug level to 5 and lets its logger drop the lines,
            # but imaplib formats each line first: the repr of every message fetched, and of
            # each FETCH's whole answer again, a third of the sync's own CPU for reading.
            client._imap.debug = 0  # noqa: SLF001 - the protocol trace only -vv shows
        try:
            if s.security == "starttls":
                client.starttls(context)
            if s.auth == "xoauth2":
                client.oauth2_login(s.username, s.secret)
            else:
                client.login(s.username, s.secret)
        except BaseException:
            with contextlib.suppress(Exception):
                client.shutdown()
            raise
        return client

    def close(self) -> None:
        if self.client is not None:
            with contextlib.suppress(Exception):
                self.client.logout()
            with contextlib.suppress(Exception):
                self.client.shutdown()
        self.client = None
        self.selected = None

    def select(self, folder: str, readonly: bool) -> dict[bytes, Any]:
        client = self.connect()
        try:
            with self.translated(folder):
                info = client.select_folder(folder, readonly=readonly)
        except UsageError:
            self._no_such_folder([folder])
            raise
        self.selected = folder
        self.uidvalidity = int(info[b"UIDVALIDITY"])
        if self.validities.setdefault(folder, self.uidvalidity) != self.uidvalidity:
            self.selected = None  # nothing more is done in the renumbered folder this sync
            raise NetworkError(f"{self.where}: folder {folder} changed its UIDVALIDITY while "
                               "we were reading it", "the next sync reads it afresh")
        return info

    def call(self, folder: str, readonly: bool, action: Callable[[IMAPClient], T]) -> T:
        """Run `action` with `folder` selected; on a dropped connection reconnect, check that
        the folder's UIDVALIDITY did not change, and try again (idempotent commands only)."""
        for attempt in range(1, self.settings.retries + 1):
            try:
                if self.selected != folder or self.client is None:
                    self.select(folder, readonly)
                with self.translated(folder, reraise_dropped=True):
                    return action(self.client)
            except DROPPED as exc:
                log.warning("%s: connection dropped (%s), reconnecting (attempt %d of %d)",
                            self.where, type(exc).__name__, attempt, self.settings.retries)
                self.close()
                if attempt == self.settings.retries:
                    raise NetworkError(f"{self.where}: the connection dropped {attempt} times",
                                       "check the network or the server; the next sync "
                                       "resumes where this one stopped") from None
        raise AssertionError("unreachable")

    @contextlib.contextmanager
    def translated(self, folder: str | None = None, reraise_dropped: bool = False
                   ) -> Iterator[None]:
        s = self.settings
        try:
            yield
        except LoginError as exc:
            text = _text(exc)
            if "[UNAVAILABLE]" in text:  # RFC 5530: the server's own trouble, not our secret
                raise TemporaryError(f"{self.where} could not check the login for "
                                     f"{s.username} just now: {text}",
                                     "the next sync tries again") from None
            secret = ("the access token in the password reference (it may have expired; "
                      "refresh it)" if s.auth == "xoauth2" else
                      "the password secret (`mailbridge secrets set …`)")
            raise AuthError(f"{self.where} refused the login for {s.username}: {text}",
                            f"check the username and {secret}, then `mailbridge channels "
                            f"test {self.channel}`") from None
        except ssl.SSLCertVerificationError as exc:
            raise TlsError(f"{self.where}: the TLS certificate of {s.host} cannot be trusted: "
                           f"{exc.verify_message or exc.reason}",
                           "set incoming.ca_file to the CA that signed it, or fix the "
                           "server's certificate") from None
        except ConnectionRefusedError:
            raise NetworkError(f"{self.where}: cannot connect: connection refused",
                               "check incoming.host, incoming.port and the firewall; the next "
                               "sync retries") from None
        except DROPPED:
            if reraise_dropped:
                raise
            raise NetworkError(f"{self.where}: the connection dropped",
                               "the next sync retries") from None
        except ssl.SSLError as exc:
            raise TlsError(f"{self.where}: TLS failed: {exc.reason or exc}",
                           "check incoming.security (ssl on 993, starttls on 143) and "
                           "incoming.port") from None
        except socket.gaierror as exc:
            raise NetworkError(f"{self.where}: cannot resolve {s.host}: {exc.strerror}",
                               "check incoming.host and the DNS") from None
        except OSError as exc:
            raise NetworkError(f"{self.where}: cannot connect: {exc.strerror or exc}",
                               "check incoming.host, incoming.port and the firewall; the next "
                               "sync retries") from None
        except IMAPClientError as exc:
            text = _text(exc)
            if folder and "select" in text.lower():
                raise UsageError(f"{self.where}: cannot open folder {folder}: {text}",
                                 f"see `mailbridge channels test {self.channel}` for the "
                                 "folders the server has") from None
            if "capabilit" in text.lower() and s.security == "starttls":
                raise TlsError(f"{self.where}: the server does not offer STARTTLS",
                               "use security = \"ssl\" (port 993), or \"none\" only on a "
                               "trusted network") from None
            raise RemoteError(f"{self.where}: {text}") from None

    def folders(self) -> list[Folder]:
        client = self.connect()
        with self.translated():
            listed = client.list_folders()
            spaces = client.namespace() if client.has_capability("NAMESPACE") else None
        wanted = self.settings.folders
        personal = spaces.personal[0][0] if spaces and spaces.personal else ""
        # Other users' and shared namespaces (RFC 2342) are never the owner's own mail.
        others = tuple(prefix for group in ((spaces.other, spaces.shared) if spaces else ())
                       for prefix, _sep in group or () if prefix)
        described = [describe_folder(name, flags, delimiter, personal) for flags, delimiter, name
                     in listed]
        reasons = skipped(described, self.settings.mode) if wanted == "*" else {}
        found = []
        for (flags, _delimiter, name), folder in zip(listed, described, strict=True):
            selectable = not {f.lower() for f in flags} & UNSELECTABLE
            reason = reasons.get(name)
            if wanted == "*" and reason is None and name.startswith(others):
                reason = "shared folders (another user's or a shared namespace)"
            synced = selectable and (reason is None if wanted == "*" else name in wanted)
            found.append(Folder(name, folder.flags, selectable, synced, reason))
        return found

    def synced_folders(self) -> list[str]:
        """The folders to read, in config order (or server order for "*"). Named folders are
        not LISTed first, a round trip saved on every poll: a missing one fails its SELECT,
        and only then is the server asked what it has."""
        if self.settings.folders == "*":
            return [f.name for f in self.folders() if f.synced]
        return list(self.settings.folders)

    def _no_such_folder(self, names: list[str]) -> None:
        listed = self.folders()
        missing = [n for n in names if n not in {f.name for f in listed}]
        if missing:
            have = ", ".join(f.name for f in listed if f.selectable)
            raise UsageError(f"{self.where}: no folder {', '.join(missing)} on the server "
                             f"(it has: {have})", "fix incoming.folders, or use \"*\"")


def describe_folder(name: str, flags: tuple[bytes, ...], delimiter: bytes | None,
               personal: str) -> FolderInfo:
    """A LISTed folder for the folder rules: its parent is the folder it is in, none for one
    at the top of the personal namespace (`INBOX.` on some servers) or of Gmail's
    `[Gmail]`."""
    sep = delimiter.decode() if delimiter else ""
    own = name[len(personal):] if personal and name.startswith(personal) else name
    for container in CONTAINERS:
        if sep and own.startswith(container + sep):
            own = own[len(container) + len(sep):]
    decoded = tuple(f.decode() for f in flags)
    if sep and sep in own:
        return FolderInfo(name, own.rsplit(sep, 1)[1], name.rsplit(sep, 1)[0], decoded)
    return FolderInfo(name, own, None, decoded)


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise TlsError(f"incoming.ca_file {ca_file}: cannot load it: "
                       f"{getattr(exc, 'strerror', None) or exc}") from None


def _text(exc: Exception) -> str:
    """What the server or imapclient said, secrets masked (a server may quote the login)."""
    text = str(exc)
    if text.startswith("b'") or text.startswith('b"'):
        text = text[2:-1]
    return redact.scrub(text.strip()) or type(exc).__name__


def uid_set(uids: list[int]) -> str:
    """A compact UID set (`1:500,502`): Dovecot limits a command line to 64 kB."""
    parts: list[str] = []
    ordered = sorted(uids)
    start = prev = ordered[0]
    for uid in ordered[1:]:
        if uid != prev + 1:
            parts.append(f"{start}:{prev}" if prev != start else str(start))
            start = uid
        prev = uid
    parts.append(f"{start}:{prev}" if prev != start else str(start))
    return ",".join(parts)
