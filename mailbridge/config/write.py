"""Atomic file writes: a crash or a full disk never leaves a half-written config (or token
cache) behind. What goes into a config file is decided by config.edit."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from mailbridge.errors import UsageError


def replace_file(path: Path, text: str) -> None:
    """Write `text` to a temporary file beside `path` (mode 600), fsync it, rename it over
    `path` and fsync the folder; raises OSError."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), 0o600)
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_text_atomic(path: Path, text: str) -> None:
    try:
        replace_file(path, text)
    except OSError as exc:
        raise UsageError(f"{path}: cannot write config: {exc.strerror}") from None
