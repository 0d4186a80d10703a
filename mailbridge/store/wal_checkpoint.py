"""A SQLite store's write-ahead log copied back into the database by a thread of its own.

SQLite checkpoints (copies the WAL into the database file) inside the commit that takes the
WAL past its limit, in the committing thread. In a sync that was a fifth of each commit's CPU,
spent on the thread that fetches and commits, which the whole pipeline waits for. So the
writer's own checkpoints are off (`wal_autocheckpoint = 0`). A commit after which the WAL
holds more than `WAL_BYTES` wakes a thread that checkpoints on a connection of its own. SQLite
does that in C without holding the GIL, so it runs beside the writer's Python. The checkpoint
is PASSIVE: it takes no lock that the writer or readers wait for (its fsyncs still use the
disk). The first write after a checkpoint that copied all of the WAL starts it again from
its beginning, and `journal_size_limit` cuts the file back to `WAL_BYTES` then, so the file
grows past `WAL_BYTES` only while the WAL holds more (else it keeps the largest size it
ever had, and would say nothing). Wherever this cannot work (no thread, a WAL file not where
it is looked for), the writer checkpoints itself again, as SQLite does by default.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import weakref
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

# About where SQLite's own checkpoints begin (1000 frames of a 4 KiB page each).
WAL_BYTES = 4 << 20
# A writer that commits faster than the thread checkpoints (no pause between its commits for
# a checkpoint to finish) would grow the WAL without end: at this size it waits for the
# thread and checkpoints itself, and its next write starts the WAL again from its beginning.
WAL_LIMIT_BYTES = 64 << 20
SQLITE_DEFAULT_PAGES = 1000
LOCK_SECONDS = 30.0  # a checkpoint under way is waited for this long at most


class Checkpointer:
    """Checkpoints for the writer connection `conn`; `connect` opens another connection to
    the same store."""

    def __init__(self, conn: sqlite3.Connection,
                 connect: Callable[[], sqlite3.Connection]) -> None:
        self.conn, self.connect = conn, connect
        # Where SQLite keeps the WAL: beside the database file itself, a symbolic link's
        # target included.
        database = next((row[2] for row in conn.execute("PRAGMA database_list")
                         if row[1] == "main"), "")
        self.wal = Path(f"{database}-wal")
        self._state = _Shared()
        self._started = False
        self._given_up = False
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        conn.execute(f"PRAGMA journal_size_limit = {WAL_BYTES}")

    def committed(self) -> None:
        """Called after each commit: wakes the thread once the WAL holds more than
        `WAL_BYTES`. Never raises: the commit is made, whatever happens here."""
        if self._given_up:
            return
        try:
            size = self.wal.stat().st_size
        except OSError as exc:  # after a commit the WAL is there: it is looked for elsewhere
            self._give_up(exc)
            return
        if size <= WAL_BYTES:  # (it holds more only once the file has grown past that)
            return
        if not self._started:
            self._start()
            if self._given_up:
                return
        if size < WAL_LIMIT_BYTES:
            self._state.wake.set()
        elif self._state.lock.acquire(timeout=LOCK_SECONDS):  # after the thread's checkpoint
            try:
                _checkpoint(self.conn, self._state)
            finally:
                self._state.lock.release()

    def close(self) -> None:
        """Stop the thread, after the checkpoint it may be making."""
        _stop(self._state)
        if self._state.thread is not None:
            self._state.thread.join(LOCK_SECONDS)

    def _start(self) -> None:
        self._started = True
        try:
            own = self.connect()
        except sqlite3.Error as exc:
            self._give_up(exc)
            return
        # The thread holds only what it uses, not this object or the writer's connection: a
        # store dropped without `close` is then collected as before, and ends the thread.
        thread = threading.Thread(target=_run, args=(own, self._state), daemon=True,
                                  name="mailbridge-wal-checkpoint")
        try:
            thread.start()
        except RuntimeError as exc:  # no thread to be had
            own.close()
            self._give_up(exc)
            return
        self._state.thread = thread
        weakref.finalize(self, _stop, self._state)

    def _give_up(self, why: BaseException) -> None:
        log.debug("the WAL is checkpointed by the writer: %s", why)
        self._given_up = True
        with contextlib.suppress(sqlite3.Error):
            self.conn.execute(f"PRAGMA wal_autocheckpoint = {SQLITE_DEFAULT_PAGES}")


class _Shared:
    """What the thread and the writer share."""

    def __init__(self) -> None:
        self.wake = threading.Event()
        self.lock = threading.Lock()  # held while either of them checkpoints
        self.closing = False
        self.warned = False
        self.thread: threading.Thread | None = None


def _run(own: sqlite3.Connection, state: _Shared) -> None:
    try:
        while state.wake.wait() and not state.closing:
            with state.lock:
                state.wake.clear()
                _checkpoint(own, state)
    finally:
        with contextlib.suppress(sqlite3.Error):
            own.close()


def _stop(state: _Shared) -> None:
    state.closing = True
    state.wake.set()


def _checkpoint(conn: sqlite3.Connection, state: _Shared) -> None:
    try:
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    except sqlite3.Error as exc:  # a later one, or the last connection's close, does it
        if not state.warned:  # (a full disk: the WAL grows while it cannot be copied)
            state.warned = True
            log.warning("copying the store's write-ahead log into it failed: %s", exc)
