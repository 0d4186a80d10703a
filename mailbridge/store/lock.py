"""Advisory locks beside the store file. The write lock: one writer at a time, held for a sync
or for one job of `run` (readers never take it). The service lock: held by `mailbridge run` for
its whole life, so a cron `sync` beside it stops with a clear line instead of racing it."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from mailbridge.errors import LockBusyError, os_failure


@contextlib.contextmanager
def write_lock(store_path: Path, wait_seconds: float = 0.0) -> Iterator[None]:
    with _flock(store_path.with_name(store_path.name + ".lock"), wait_seconds) as holder:
        if holder is not None:
            raise LockBusyError(
                f"another mailbridge process (pid {holder}) is writing to {store_path}",
                "try again when it has finished")
        yield


@contextlib.contextmanager
def service_lock(store_path: Path, wait_seconds: float = 0.0) -> Iterator[None]:
    """Held by `run` for its life and by a one-shot `sync` for its duration."""
    with _flock(_service_path(store_path), wait_seconds) as holder:
        if holder is not None:
            raise LockBusyError(
                f"mailbridge (pid {holder}) is already syncing {store_path}: `mailbridge run` "
                "or another `mailbridge sync`",
                "`mailbridge run` syncs every channel on schedule; see `mailbridge status`")
        yield


def service_running(store_path: Path) -> int | None:
    """The pid of the `mailbridge run` serving this store, if one is."""
    path = _service_path(store_path)
    if not path.exists():
        return None
    with _flock(path, 0.0) as holder:
        return int(holder) if holder and holder.isdigit() else None


def writer_alive(store_path: Path) -> bool:
    """Whether the process that last took the write lock is still alive (it may be writing
    now), read from the pid it left in the lock file: a reader must not take the lock even
    for a moment, or a cron `sync` starting then would find it busy."""
    try:
        pid = int(store_path.with_name(store_path.name + ".lock").read_text("ascii"))
        os.kill(pid, 0)
    except PermissionError:
        return True  # alive, run by another user
    except (OSError, ValueError):
        return False
    return True


def _service_path(store_path: Path) -> Path:
    return store_path.with_name(store_path.name + ".run.lock")


@contextlib.contextmanager
def _flock(lock_path: Path, wait_seconds: float) -> Iterator[str | None]:
    """Yields None once the lock is ours (our pid is written into it), or the holder's pid
    as text if it stayed busy for `wait_seconds`."""
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise os_failure(lock_path, "cannot create the lock file", exc) from None
    try:
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    yield os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
                    return
                time.sleep(0.1)
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
        except OSError as exc:  # a full disk: the first write of a sync fails here
            raise os_failure(lock_path, "cannot write the lock file", exc) from None
        yield None
    finally:
        os.close(fd)
