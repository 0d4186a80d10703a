"""Outgoing SMTP (Usedesk's "external" outgoing connection): TLS or STARTTLS with an optional
private CA, AUTH when a username is set, timeouts on every call.

`send` says precisely how far a message got, because the outbox must never send twice:
SendFailed means the server did not take it (safe to try again), SendUnknown means the
connection broke after the message was handed over, so it may have been delivered."""

from __future__ import annotations

import re
import smtplib
import socket
import ssl
from dataclasses import dataclass
from typing import Any

from mailbridge import redact
from mailbridge.connectors.base import SendFailed, SendUnknown
from mailbridge.errors import AuthError, MailbridgeError, NetworkError, TlsError

DEFAULT_PORTS = {"ssl": 465, "starttls": 587, "none": 25}
_EOL_RE = re.compile(rb"\r\n|\n|\r")
_DOT_RE = re.compile(rb"(?m)^\.")


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    security: str  # ssl | starttls | none
    username: str | None = None
    password: str | None = None
    timeout: float = 60.0
    ca_file: str | None = None


class SmtpSender:
    def __init__(self, settings: SmtpSettings, channel: str) -> None:
        self.settings = settings
        self.where = f"channel {channel}: SMTP {settings.host}:{settings.port}"
        self._smtp: smtplib.SMTP | None = None

    def check(self) -> dict[str, Any]:
        """Connect, greet, secure and log in, sending nothing: the outgoing connection test."""
        smtp = self._connect()
        features = sorted(smtp.esmtp_features)
        self.close()
        return {"host": self.settings.host, "port": self.settings.port,
                "security": self.settings.security,
                "login": "ok" if self.settings.username else "not needed",
                "extensions": features}

    def send(self, envelope_from: str, recipients: list[str], raw: bytes) -> dict[str, str]:
        """Returns the recipients the server refused while it took the message for others."""
        smtp = self._smtp or self._connect()
        try:
            code, reply = smtp.mail(envelope_from)
            if code != 250:
                raise self._refused("MAIL FROM", code, reply)
            refused = {}
            for rcpt in recipients:
                code, reply = smtp.rcpt(rcpt)
                if code not in (250, 251):
                    refused[rcpt] = f"{code} {_text(reply)}"
            if len(refused) == len(recipients):
                permanent = all(v.startswith("5") for v in refused.values())
                raise SendFailed("every recipient was refused: " + "; ".join(
                    f"{k}: {v}" for k, v in refused.items()), permanent)
            code, reply = smtp.docmd("DATA")
            if code != 354:
                raise self._refused("DATA", code, reply)
        except SendFailed:
            self.close()  # a fresh connection for the next message, no RSET dance
            raise
        except (smtplib.SMTPException, OSError) as exc:  # before DATA: nothing was delivered
            self.close()
            raise SendFailed(f"{self.where}: {_describe(exc)}", permanent=False) from None
        try:
            smtp.send(_dot_stuffed(raw))
            code, reply = smtp.getreply()
        except (smtplib.SMTPException, OSError) as exc:
            self.close()
            raise SendUnknown(f"{self.where}: the connection broke after the message was "
                              f"sent ({_describe(exc)})") from None
        if code != 250:
            self.close()
            raise self._refused("the message", code, reply)
        return refused

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()

    def _refused(self, what: str, code: int, reply: bytes) -> SendFailed:
        return SendFailed(f"{self.where} refused {what}: {code} {_text(reply)}",
                          permanent=500 <= code < 600)

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        context = ssl.create_default_context(cafile=s.ca_file) if s.security != "none" else None
        try:
            if s.security == "ssl":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout,
                                                      context=context)
            else:
                smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
            smtp.ehlo()
            if s.security == "starttls":
                if not smtp.has_extn("starttls"):
                    raise TlsError(f"{self.where} does not offer STARTTLS",
                                   'set security = "ssl" (port 465) or, on a trusted network '
                                   'only, "none"')
                smtp.starttls(context=context)
                smtp.ehlo()
            if s.username:
                smtp.login(s.username, s.password or "")
        except smtplib.SMTPAuthenticationError as exc:
            raise AuthError(f"{self.where} refused the login for {s.username}: "
                            f"{exc.smtp_code} {_text(exc.smtp_error)}",
                            "check outgoing.username and the password secret") from None
        except ssl.SSLCertVerificationError as exc:
            raise TlsError(f"{self.where}: the TLS certificate of {s.host} cannot be trusted: "
                           f"{exc.verify_message}",
                           "set outgoing.ca_file to the CA that signed it") from None
        except MailbridgeError:
            raise
        except (smtplib.SMTPException, OSError) as exc:
            raise NetworkError(f"{self.where}: {_describe(exc)}",
                               "check host, port and security; the outbox keeps the mail "
                               "and the next sync tries again") from None
        self._smtp = smtp
        return smtp


def _dot_stuffed(raw: bytes) -> bytes:
    data = _DOT_RE.sub(b"..", _EOL_RE.sub(b"\r\n", raw))
    return data + (b"" if data.endswith(b"\r\n") else b"\r\n") + b".\r\n"


def _text(reply: bytes | str) -> str:
    """A server reply on one line, secrets masked (a server may quote the AUTH it refused)."""
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return redact.scrub(" ".join(text.split()))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return "the server closed the connection"
    return redact.scrub(str(exc)) or type(exc).__name__
