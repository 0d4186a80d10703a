"""Drafts: the text of a reply, forward or comment that exists nowhere else (written in the
editor, or piped on stdin) while it is being queued. They live in a private folder under the
data dir (mode 700, each file 600: a draft quotes customer mail), so a failure to queue, or
mailbridge being killed, never deletes what an agent wrote; `--file DRAFT` takes it back."""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from mailbridge.config.paths import default_data_dir


def folder() -> Path:
    """The drafts folder, made private if it is not (an existing one made with a wide umask)."""
    path = default_data_dir() / "drafts"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)
    return path


def create(kind: str, ticket: int, text: str) -> Path:
    """A new draft file holding `text`, named after the ticket, the kind and the time."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    fd, name = tempfile.mkstemp(prefix=f"ticket-{ticket}-{kind}-{stamp}-", suffix=".txt",
                                dir=folder())  # mode 600
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    return Path(name)


def is_draft(path: Path) -> bool:
    """Whether `path` is a file in the drafts folder (one `--file` may use up)."""
    try:
        return path.resolve().parent == (default_data_dir() / "drafts").resolve()
    except OSError:
        return False


def discard(path: Path) -> None:
    path.unlink(missing_ok=True)
