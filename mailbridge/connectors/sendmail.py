"""Outgoing through the local MTA (Usedesk's "internal" outgoing connection: the system sends
for you): the message on the stdin of a sendmail-compatible command.

The envelope is given on the command line (`-f FROM -- RCPT…`) so the blind copy reaches its
recipient; a command with `-t` takes the recipients from the headers instead (Postfix and Exim
disagree on what `-t` does with command-line recipients), and then the blind copy is lost.
Exit statuses follow sysexits.h: 75 (EX_TEMPFAIL) is worth another try, other failures are
not; a command that does not answer in time may have queued the message already."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any

from mailbridge.connectors.base import SendFailed, SendUnknown
from mailbridge.errors import UsageError

DEFAULT_COMMAND = ("/usr/sbin/sendmail", "-oi")
EX_TEMPFAIL = 75


class SendmailSender:
    def __init__(self, command: tuple[str, ...], channel: str, timeout: float = 60.0) -> None:
        self.command = command
        self.timeout = timeout
        self.where = f"channel {channel}: {command[0]}"

    def check(self) -> dict[str, Any]:
        """The command exists and may be run; nothing is sent."""
        found = shutil.which(self.command[0])
        if found is None or not os.access(found, os.X_OK):
            raise self._missing()
        return {"command": list(self.command), "program": found, "login": "not needed"}

    def send(self, envelope_from: str, recipients: list[str], raw: bytes) -> dict[str, str]:
        argv = [*self.command, "-f", envelope_from]
        if "-t" not in self.command:
            argv += ["--", *recipients]
        try:
            done = subprocess.run(argv, input=raw, capture_output=True, timeout=self.timeout,
                                  check=False)
        except FileNotFoundError:
            raise self._missing() from None
        except PermissionError as exc:
            raise UsageError(f"{self.where}: cannot be run: {exc.strerror}") from None
        except subprocess.TimeoutExpired:
            raise SendUnknown(f"{self.where} did not finish in {self.timeout:.0f} s; it may "
                              "have queued the message") from None
        if done.returncode:
            said = " ".join(done.stderr.decode("utf-8", "replace").split())[:300]
            raise SendFailed(f"{self.where} exited {done.returncode}: {said or 'no message'}",
                             permanent=done.returncode != EX_TEMPFAIL)
        return {}

    def _missing(self) -> UsageError:
        return UsageError(f"{self.where}: no such program",
                          "install an MTA (e.g. Debian's postfix or exim4) or set "
                          "outgoing.command")

    def close(self) -> None:
        """Nothing is kept open between messages."""
