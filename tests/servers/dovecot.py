"""A real Dovecot (Debian's dovecot-imapd) for the tests, with its own config in a temp dir:
plaintext (with STARTTLS) and implicit-TLS listeners on 127.0.0.1, a certificate from a
throw-away CA (trustme), passwd-file users with a non-root mail uid, special-use folders, and
XOAUTH2/OAUTHBEARER logins checked against a local userinfo endpoint (`oauth.issue(user)`)."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from imapclient import IMAPClient

CONFIG = """\
protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
ssl = yes
ssl_cert = <{root}/cert.pem
ssl_key = <{root}/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login xoauth2 oauthbearer
mail_location = maildir:~/Maildir
first_valid_uid = 1
default_internal_user = {internal}
default_login_user = {login}
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {root}/oauth2.conf.ext
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users/%u
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {root}/users/%u
}}
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Junk {{
    special_use = \\Junk
    auto = create
  }}
  mailbox Trash {{
    special_use = \\Trash
    auto = create
  }}
  mailbox Drafts {{
    special_use = \\Drafts
    auto = create
  }}
  mailbox Sent {{
    special_use = \\Sent
    auto = create
  }}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
    ssl = yes
  }}
}}
"""

OAUTH2 = """\
introspection_mode = auth
introspection_url = {url}
username_attribute = mail
active_attribute = active
active_value = true
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _accepts(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass(frozen=True)
class ImapUser:
    username: str
    password: str
    host: str
    port: int
    tls_port: int
    ca_file: Path


class Dovecot:
    START_TIMEOUT = 15.0

    def __init__(self) -> None:
        self.binary = shutil.which("dovecot") or "/usr/sbin/dovecot"
        if not os.path.exists(self.binary):
            raise RuntimeError("dovecot is not installed (Debian package dovecot-imapd)")
        # mkdtemp is private; the mail and login users must be able to traverse it
        self.root = Path(tempfile.mkdtemp(prefix="mb-dovecot-"))
        self.root.chmod(0o755)
        self.proc: subprocess.Popen | None = None
        if os.geteuid() == 0:
            self.internal, self.login = "dovecot", "dovenull"
            nobody = pwd.getpwnam("nobody")
            self.mail_uid, self.mail_gid = nobody.pw_uid, nobody.pw_gid
        else:
            me = pwd.getpwuid(os.getuid()).pw_name
            self.internal = self.login = me
            self.mail_uid, self.mail_gid = os.getuid(), os.getgid()
        self._make_certificate()
        from servers.oauth_userinfo import UserInfoServer

        self.oauth = UserInfoServer()
        (self.root / "oauth2.conf.ext").write_text(OAUTH2.format(url=self.oauth.url))
        (self.root / "users").mkdir(mode=0o755)
        (self.root / "home").mkdir(mode=0o755)

    def _make_certificate(self) -> None:
        import trustme

        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        cert.private_key_pem.write_to_path(str(self.root / "key.pem"))
        cert.cert_chain_pems[0].write_to_path(str(self.root / "cert.pem"))
        self.ca_file = self.root / "ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_file))

    def start(self, port: int | None = None, tls_port: int | None = None) -> None:
        """Start on the given ports (a restart) or on free ones, a few tries if one is taken."""
        for _attempt in range(5 if port is None else 1):
            self.port = port or free_port()
            self.tls_port = tls_port or free_port()
            conf = self.root / "dovecot.conf"
            conf.write_text(CONFIG.format(root=self.root, internal=self.internal,
                                          login=self.login, port=self.port,
                                          tls_port=self.tls_port))
            self.proc = subprocess.Popen([self.binary, "-F", "-c", str(conf)],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            deadline = time.monotonic() + self.START_TIMEOUT
            while time.monotonic() < deadline and self.proc.poll() is None:
                if _accepts(self.port) and _accepts(self.tls_port):
                    return
                time.sleep(0.05)
            self.stop()
        raise RuntimeError("dovecot did not start: " + self.log_tail())

    def log_tail(self) -> str:
        log = self.root / "dovecot.log"
        stderr = b""
        if self.proc is not None and self.proc.stderr is not None and self.proc.poll() is not None:
            stderr = self.proc.stderr.read() or b""
        text = log.read_text(errors="replace") if log.exists() else ""
        return (text[-2000:] + stderr.decode(errors="replace")[-2000:]).strip()

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        self.proc = None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (_accepts(self.port) or _accepts(self.tls_port)):
            time.sleep(0.05)

    def restart(self) -> None:
        self.stop()
        self.start(self.port, self.tls_port)

    def close(self) -> None:
        self.stop()
        self.oauth.close()
        shutil.rmtree(self.root, ignore_errors=True)

    def add_user(self, name: str | None = None, password: str | None = None) -> ImapUser:
        name = name or f"u{uuid.uuid4().hex[:10]}"
        password = password or uuid.uuid4().hex
        home = self.root / "home" / name
        home.mkdir(mode=0o700)
        os.chown(home, self.mail_uid, self.mail_gid)
        # One passwd-file per user: Dovecot does not always reread a file that changed
        # within the same second, but a new user means a new path it has never cached.
        (self.root / "users" / name).write_text(
            f"{name}:{{PLAIN}}{password}:{self.mail_uid}:{self.mail_gid}::{home}::\n")
        return ImapUser(name, password, "127.0.0.1", self.port, self.tls_port, self.ca_file)

    def client(self, username: str, password: str) -> IMAPClient:
        client = IMAPClient("127.0.0.1", self.port, ssl=False, timeout=30)
        client.login(username, password)
        return client

    def append(self, username: str, password: str, messages: list[bytes],
               folder: str = "INBOX", seen: bool = False, arrived: datetime | None = None
               ) -> None:
        """`arrived`: the messages' INTERNALDATE (when the server received them; default
        now), set independently of their Date header."""
        client = self.client(username, password)
        try:
            flags = [b"\\Seen"] if seen else []
            for raw in messages:
                client.append(folder, raw, flags=flags, msg_time=arrived)
        finally:
            with contextlib.suppress(Exception):
                client.logout()
