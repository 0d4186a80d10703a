"""The forwarding drop (Usedesk's "internal connection"): an MTA, procmail or fetchmail
delivers each message as a file into a Maildir spool (`tmp/` then `new/`); after the commit a
file is moved to `cur/` with the Seen flag, as any Maildir reader would."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from mailbridge.connectors.base import Batch, Fetched, SourceState
from mailbridge.domain.source import SourceRef
from mailbridge.errors import SpoolError, os_failure

MAILBOX, FOLDER = "spool", "new"


def make_spool(root: Path) -> None:
    for sub in ("tmp", "new", "cur"):
        (root / sub).mkdir(parents=True, exist_ok=True, mode=0o700)


def deliver(root: Path, name: str, raw: bytes) -> Path:
    """Write a message the Maildir way: into tmp/, then an atomic rename into new/."""
    tmp = root / "tmp" / name
    tmp.write_bytes(raw)
    final = root / "new" / name
    os.replace(tmp, final)
    return final


class DropFetcher:
    def __init__(self, channel: str, root: Path, batch_size: int = 100) -> None:
        self.channel = channel
        self.root = root
        self.batch_size = batch_size
        self.problems: list[str] = []  # a single-source connector fails whole
        self._names: dict[str, str] = {}  # source key -> file name in new/ (flags may follow)

    def _check(self) -> None:
        if not (self.root / "new").is_dir() or not (self.root / "cur").is_dir():
            raise SpoolError(
                f"channel {self.channel}: spool directory {self.root} does not exist "
                "or is not a Maildir",
                f"create it with `mkdir -p {self.root}/{{tmp,new,cur}}`",
            )

    def _waiting_names(self) -> list[str]:
        self._check()
        return sorted(n for n in os.listdir(self.root / "new") if not n.startswith("."))

    def waiting(self) -> int:
        """How many delivered files wait in new/ (the connection test)."""
        return len(self._waiting_names())

    def fetch(self, state: SourceState) -> Iterator[Batch]:
        names = self._waiting_names()
        for start in range(0, len(names), self.batch_size):
            chunk = names[start:start + self.batch_size]
            yield Batch(MAILBOX, FOLDER, [self._read(n) for n in chunk])

    def _read(self, name: str) -> Fetched:
        ref = SourceRef(MAILBOX, FOLDER, name.split(":", 1)[0])
        self._names[ref.key] = name
        path = self.root / "new" / name
        try:
            # Its arrival is when the MTA delivered it: the file's modification time.
            arrived = datetime.fromtimestamp(path.stat().st_mtime, UTC)
            return Fetched(ref, path.read_bytes(), arrived=arrived)
        except OSError as exc:
            return Fetched(ref, None, f"{name}: cannot read: {exc.strerror}")

    def ack(self, refs: list[SourceRef]) -> None:
        for ref in refs:
            name = self._names.get(ref.key, ref.key)
            source = self.root / "new" / name
            try:
                os.replace(source, self.root / "cur" / f"{ref.key}:2,S")
            except FileNotFoundError:
                pass  # already moved by an earlier run that stopped before its ack finished
            except OSError as exc:
                raise os_failure(source, "stored, but cannot be moved to cur/", exc, SpoolError,
                                 "it stays in new/ and the next sync moves it without "
                                 "storing it again") from None

    def close(self) -> None:
        pass
