"""A SQLite store's write-ahead log copied back into the database by a thread of its own.

SQLite checkpoints (copies the WAL into the database file) inside the commit that takes the
WAL past its limit, in the committing thread. In a sync that was a fifth of each commit's CPU,
spent on the thread that fetches and commits, which the whole pipeline waits for. So the
writer's own checkpoints are off (`wal_autocheckpoint = 0`); once the WAL file has grown to
`WAL_BYTES`, each commit wakes a thread that checkpoints on a connection of its own. SQLite
does that in C without holding the GIL, so it runs beside the writer's Python. The checkpoint
is PASSIVE: it never waits for the writer or for readers, and never holds them up. The WAL is
reused from its start by the first write after a checkpoint that copied all of it, so it stays
about the size it had. If the thread cannot be started, the writer checkpoints itself again,
as SQLite does by default.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

WAL_BYTES = 4 << 20  # where SQLite's own checkpoints begin: 1000 pages of 4 KiB
# A writer that commits faster than the thread checkpoints (no pause between its commits for
# a checkpoint to catch up) would grow the WAL without end: at this size it waits for the
# thread and checkpoints itself, and its next write starts the WAL again from its beginning.
WAL_LIMIT_BYTES = 64 << 20
SQLITE_DEFAULT_PAGES = 1000
JOIN_SECONDS = 30.0  # a checkpoint in progress is finished, not abandoned, at close


class Checkpointer:
    """Checkpoints for the writer connection `conn` to the store at `path`; `connect` opens
    another connection to it."""

    def __init__(self, conn: sqlite3.Connection, path: Path,
                 connect: Callable[[], sqlite3.Connection]) -> None:
        self.conn, self.connect = conn, connect
        self.wal = Path(f"{path}-wal")
        self._wake = threading.Event()
        self._idle = threading.Event()  # no checkpoint in progress in the thread
        self._idle.set()
        self._thread: threading.Thread | None = None
        self._closing = False
        self._given_up = False
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        # The WAL file is cut back to this when it starts again, so its size says how much it
        # holds past it (else it keeps the largest size it ever had).
        conn.execute(f"PRAGMA journal_size_limit = {WAL_BYTES}")

    def committed(self) -> None:
        """Called after each commit: wakes the thread once the WAL is large enough."""
        if self._given_up:
            return
        try:
            size = self.wal.stat().st_size
        except OSError:
            return
        if self._thread is None:
            if size < WAL_BYTES:
                return
            self._start()
            if self._thread is None:
                return
        if size >= WAL_LIMIT_BYTES:
            self._idle.wait(JOIN_SECONDS)
            self._checkpoint(self.conn)
            return
        self._wake.set()

    def close(self) -> None:
        """Stop the thread, after the checkpoint it may be making."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._closing = True
            self._wake.set()
            thread.join(JOIN_SECONDS)

    def _start(self) -> None:
        try:
            own = self.connect()
        except sqlite3.Error as exc:
            self._give_up(exc)
            return
        thread = threading.Thread(target=self._run, args=(own,), daemon=True,
                                  name="mailbridge-wal-checkpoint")
        try:
            thread.start()
        except RuntimeError as exc:  # no thread to be had
            own.close()
            self._give_up(exc)
            return
        self._thread = thread

    def _give_up(self, exc: BaseException) -> None:
        log.debug("the WAL is checkpointed by the writer: no checkpointing thread (%s)", exc)
        self._given_up = True
        self.conn.execute(f"PRAGMA wal_autocheckpoint = {SQLITE_DEFAULT_PAGES}")

    def _run(self, own: sqlite3.Connection) -> None:
        try:
            while self._wake.wait() and not self._closing:
                self._idle.clear()
                self._wake.clear()
                try:
                    self._checkpoint(own)
                finally:
                    self._idle.set()
        finally:
            with contextlib.suppress(sqlite3.Error):
                own.close()

    @staticmethod
    def _checkpoint(conn: sqlite3.Connection) -> None:
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error as exc:  # the next one, or the last close, does it
            log.debug("WAL checkpoint: %s", exc)
