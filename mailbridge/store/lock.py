"""One writer at a time: an advisory lock beside the store file. Readers never take it."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from mailbridge.errors import LockBusyError, StoreError


@contextlib.contextmanager
def write_lock(store_path: Path, wait_seconds: float = 0.0) -> Iterator[None]:
    lock_path = store_path.with_name(store_path.name + ".lock")
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise StoreError(f"{lock_path}: cannot create the lock file: {exc.strerror}") from None
    try:
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
                    raise LockBusyError(
                        f"another mailbridge process (pid {holder}) is writing to {store_path}",
                        "try again when it has finished",
                    ) from None
                time.sleep(0.1)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)
