"""A real SMTP server for the tests (aiosmtpd) on 127.0.0.1: plain, STARTTLS or implicit TLS
with a throw-away CA (trustme), optional AUTH, and what it received kept for assertions.
`hang_up_after_data` makes it drop the connection once the message is transferred, before it
answers: the case where a sender cannot know whether the mail went out."""

from __future__ import annotations

import shutil
import ssl
import tempfile
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from servers.dovecot import free_port


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        lf = self.data.replace(b"\r\n", b"\n")  # as a mail client would show it
        return message_from_bytes(lf, policy=policy.default)  # type: ignore[return-value]


@dataclass
class Recorder:
    received: list[Received] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)  # recipient -> SMTP reply
    data_reply: str | None = None  # e.g. "451 try later" for every message
    hang_up_after_data: bool = False

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        if self.hang_up_after_data:
            server.transport.close()
            return "421 gone"  # never reaches the client: the transport is closed
        if self.data_reply:
            return self.data_reply
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                      envelope.original_content or envelope.content))
        return "250 OK queued"


class SmtpServer:
    def __init__(self, security: str = "none", user: str | None = None,
                 password: str | None = None, refusal: str | None = None) -> None:
        """`refusal`: the reply to a failed AUTH, `{password}` standing for the password
        tried (a careless server may quote it)."""
        self.security = security
        self.user, self.password, self.refusal = user, password, refusal
        self.recorder = Recorder()
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        self.root = Path(tempfile.mkdtemp(prefix="mb-smtp-"))
        self.ca_file = self.root / "ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_file))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert.configure_cert(context)
        # aiosmtpd only counts STARTTLS as TLS for AUTH; implicit TLS is encrypted from the
        # first byte, so it is told not to insist.
        kwargs: dict = {"auth_require_tls": security == "starttls"}
        if user:
            kwargs["authenticator"] = self._authenticate
            kwargs["auth_required"] = True
        if security == "starttls":
            kwargs["tls_context"] = context
            kwargs["require_starttls"] = True
        self.port = free_port()
        self.controller = Controller(
            self.recorder, hostname="127.0.0.1", port=self.port,
            ssl_context=context if security == "ssl" else None,
            server_hostname="localhost", ready_timeout=10, **kwargs)
        self.controller.start()

    def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = (isinstance(auth_data, LoginPassword) and auth_data.login.decode() == self.user
              and auth_data.password.decode() == self.password)
        if ok or self.refusal is None:
            return AuthResult(success=ok, handled=False)
        tried = auth_data.password.decode() if isinstance(auth_data, LoginPassword) else ""
        return AuthResult(success=False, handled=False,
                          message=self.refusal.format(password=tried))

    @property
    def received(self) -> list[Received]:
        return self.recorder.received

    def close(self) -> None:
        self.controller.stop()
        shutil.rmtree(self.root, ignore_errors=True)
