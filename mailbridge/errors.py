"""The error tree. Every error the user may see is a MailbridgeError with an exit code and,
where there is one, a remedy. Library exceptions are translated into these at the boundary
of the layer that called the library, so the CLI has one place that prints them."""

from __future__ import annotations

import errno
from pathlib import Path

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_PARTIAL = 4
EXIT_TEMPFAIL = 75  # EX_TEMPFAIL from sysexits.h: cron, systemd and MTAs retry on it


class MailbridgeError(Exception):
    exit_code = EXIT_INTERNAL

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(MailbridgeError):
    exit_code = EXIT_USAGE


class ConfigError(UsageError):
    """A config problem; `problems` holds every one found, each as `file: key.path: what`."""

    def __init__(self, problems: list[str], hint: str | None = None) -> None:
        self.problems = problems
        first = problems[0] if problems else "invalid configuration"
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(first + more, hint)


class NotFoundError(UsageError):
    """A channel, ticket or other named thing that does not exist."""


class StoreError(UsageError):
    """The store file cannot be used as it is (not SQLite, read-only, newer schema)."""


class SpoolError(UsageError):
    """A forwarding-drop spool directory is missing or unusable."""


class SecretError(MailbridgeError):
    exit_code = EXIT_AUTH


class AuthError(MailbridgeError):
    exit_code = EXIT_AUTH


class TemporaryError(MailbridgeError):
    exit_code = EXIT_TEMPFAIL


class LockBusyError(TemporaryError):
    pass


class DiskFullError(TemporaryError):
    """The file system under the store or a spool is full. Temporary: once there is space
    the same run succeeds, and until then nothing half-done is committed or acked."""


FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
FREE_SPACE_HINT = ("free space on it (`df -h {where}`), then run again; until then mail waits "
                   "where it is (the MTA, the server or the spool keeps it)")


def disk_full(path: Path | str, detail: str, hint: str | None = None) -> DiskFullError:
    """The one wording of a full file system, naming the file that could not grow."""
    where = Path(path).parent
    return DiskFullError(f"{path}: the disk is full ({detail})",
                         hint or FREE_SPACE_HINT.format(where=where))


def os_failure(path: Path | str, doing: str, exc: OSError,
               other: type[MailbridgeError] = StoreError,
               hint: str | None = None) -> MailbridgeError:
    """An OSError met while `doing` something to `path`, as the user sees it: a full file
    system (or quota) is a DiskFullError, anything else `other` with the system's words."""
    if exc.errno in FULL_ERRNOS:
        return disk_full(path, f"{doing}: {exc.strerror}", hint)
    return other(f"{path}: {doing}: {exc.strerror or exc}", hint)


class PartialFailure(MailbridgeError):
    exit_code = EXIT_PARTIAL


class NotSupportedError(UsageError):
    """A configured feature this version does not implement yet."""


class NetworkError(TemporaryError):
    """A server could not be reached or dropped the connection: retry later."""


class TlsError(UsageError):
    """A server's certificate could not be verified: the config or the server must change."""


class RemoteError(MailbridgeError):
    """A server refused an operation for a reason other than credentials."""

    exit_code = EXIT_PARTIAL
