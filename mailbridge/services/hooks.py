"""[[hook]]s, run by `mailbridge run`: each hook's command runs once for each event of the
kinds it is `on`, in the order of the stream, with the event as JSON on stdin.

At least once, in order: the hook's cursor (store/hooks.py) moves past an event only after its
command exited 0 for it, in a transaction of its own. A crash (or SIGKILL) of `run` after the
command succeeded and before that commit runs the command again for the same event on the
next start: a hook must tolerate seeing an event twice (its `cursor` tells it so), never a
gap. A failing command (non-zero exit, timeout, not startable) is tried again for the same
event after 5 s, then 10 s, 20 s … at most 5 min, while the other hooks and the syncs go on.

On a shared (PostgreSQL) store, one host runs a given hook at a time: a hook is a lease unit
`hook:<name>` (store/leases.py), held while `run` lives and renewed by its heartbeat; moving the
cursor checks the lease in the same transaction, so a host that lost it moves nothing."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import threading
from collections.abc import Callable
from typing import Any

from mailbridge.config.model import Config, Hook
from mailbridge.errors import MailbridgeError
from mailbridge.services import fleet
from mailbridge.services.events import shown
from mailbridge.store import events, leases
from mailbridge.store import hooks as hook_state
from mailbridge.store.backends import connection
from mailbridge.store.db import Store
from mailbridge.store.session import exists, reading, writing_per_commit

log = logging.getLogger("mailbridge.run")

FIRST_RETRY = 5.0  # seconds before a failed hook is tried again; doubled each time …
LAST_RETRY = 300.0  # … up to this
STOP_GRACE = 5.0  # a hook still running when `run` stops gets this long after SIGTERM
POLL = 0.2  # how often a running command is checked on (stop, timeout)
BATCH = 100
WRITE_LOCK_WAIT = 60.0


def unit(hook: Hook) -> tuple[str, str]:
    """The hook's lease unit on a shared store."""
    return f"hook:{hook.name}", leases.CHANNEL


def retry_in(failures: int) -> float:
    """Seconds before the next try of a hook that failed `failures` times before this one."""
    return min(LAST_RETRY, FIRST_RETRY * 2 ** min(failures, 16))


def prepare(db: Store, hooks: tuple[Hook, ...]) -> None:
    """Before `run` schedules anything: each hook's place in the stream (a new hook starts
    at its end), and its lease row on a shared store."""
    for hook in hooks:
        hook_state.ensure(db, hook.name)
    if db.shared and hooks:
        leases.ensure(db, [unit(h) for h in hooks])


class Runner:
    """One hook in `run`: `tick` (a scheduler job, every second on a thread of the hooks'
    own) runs its command for the events waiting, unless it is waiting to try again."""

    def __init__(self, config: Config, hook: Hook, stop: threading.Event,
                 heartbeat: fleet.Heartbeat | None) -> None:
        self.config, self.hook, self.stop, self.heartbeat = config, hook, stop, heartbeat
        self.lease: leases.Lease | None = None

    def stopped(self) -> bool:
        return self.stop.is_set() or (self.lease is not None and self.heartbeat is not None
                                      and self.heartbeat.lost(self.lease))

    def tick(self) -> None:
        """Never raises (APScheduler would only log it with a traceback)."""
        try:
            if not self._anything_to_do():
                return
            with writing_per_commit(self.config.store, WRITE_LOCK_WAIT) as db:
                if self._leased(db):
                    self._deliver(db)
        except MailbridgeError as exc:
            log.error("hook %s: not run: %s", self.hook.name, exc)
        except Exception:  # noqa: BLE001 - one broken run must not end the service
            log.exception("hook %s: internal error; the next tick will try again",
                          self.hook.name)

    def _anything_to_do(self) -> bool:
        """A cheap look, without the write lock: events waiting and the hook not backing
        off (the lease is another host's business: it is claimed under the write path)."""
        with reading(self.config.store) as db:
            state = hook_state.get(db, self.hook.name)
            return (state is not None and hook_state.waiting(db, self.hook.name) == 0
                    and events.count_after(db, state["cursor"], self.hook.on) > 0)

    def _leased(self, db: Store) -> bool:
        if self.heartbeat is None:
            return True  # SQLite: one `run` per store (the service lock)
        if self.lease is not None and not self.heartbeat.lost(self.lease):
            return True
        if self.lease is not None:
            self.heartbeat.drop(self.lease)
        self.lease = leases.claim(db, unit(self.hook), self.heartbeat.owner,
                                  self.heartbeat.seconds, due_only=False,
                                  stale=fleet.dead_here)
        if self.lease is not None:
            self.heartbeat.hold(self.lease)
        return self.lease is not None

    def _deliver(self, db: Store) -> None:
        state = hook_state.get(db, self.hook.name)
        if state is None or hook_state.waiting(db, self.hook.name) > 0:
            return
        cursor, failures = state["cursor"], state["failures"]
        while not self.stopped():
            batch = events.after(db, cursor, self.hook.on, BATCH)
            if not batch:
                return
            for event in batch:
                error = run_command(self.hook, shown(event), self.stopped)
                if self.stopped():
                    return  # cut short: the event is run again next time
                with db.atomic():
                    if self.lease is not None:
                        leases.check(db, self.lease)
                    if error is not None:
                        delay = retry_in(failures)
                        count = hook_state.failed(db, self.hook.name, error, delay)
                        log.warning("hook %s: event %d (%s): %s; failure %d, trying again "
                                    "in %d s", self.hook.name, event["id"], event["kind"],
                                    error, count, delay)
                        return
                    hook_state.advance(db, self.hook.name, event["id"])
                cursor, failures = event["id"], 0

    def close(self) -> None:
        """When `run` stops: give the lease back, so another host takes the hook at once."""
        if self.lease is None or self.heartbeat is None:
            return
        self.heartbeat.drop(self.lease)
        with contextlib.suppress(Exception), connection(self.config.store) as db:
            leases.release(db, self.lease, 0.0)
        self.lease = None


def run_command(hook: Hook, event: dict[str, Any], stopped: Callable[[], bool]) -> str | None:
    """Run the hook's command with `event` on stdin (argv, never a shell); None when it
    exited 0, else what went wrong, in one line. Killed (its whole process group) at its
    timeout, or when `stopped()`."""
    env = {**os.environ, "MAILBRIDGE_HOOK": hook.name, "MAILBRIDGE_EVENT": event["kind"],
           "MAILBRIDGE_CURSOR": str(event["cursor"])}
    try:
        proc = subprocess.Popen(hook.command, stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                                start_new_session=True)
    except OSError as exc:
        return f"cannot run {hook.command[0]}: {exc.strerror or exc}"
    data: bytes | None = (json.dumps(event, ensure_ascii=False) + "\n").encode()
    waited = 0.0
    while True:
        try:
            _out, err = proc.communicate(data, timeout=POLL)
            break
        except subprocess.TimeoutExpired:
            data = None  # given once: communicate keeps writing what is left of it
            waited += POLL
        if stopped():
            _end(proc, signal.SIGTERM)
            return "stopped while running"
        if waited >= hook.timeout:
            _end(proc, signal.SIGKILL)
            return f"timed out after {hook.timeout} s"
    if proc.returncode == 0:
        return None
    last = next((line for line in reversed(err.decode("utf-8", "replace").splitlines())
                 if line.strip()), "")
    how = (f"killed by signal {-proc.returncode}" if proc.returncode < 0
           else f"exited {proc.returncode}")
    return f"{how}: {last.strip()[:300]}" if last.strip() else how


def _end(proc: subprocess.Popen, sig: int) -> None:
    """Signal the command's process group, then make sure it is gone (bounded)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        proc.communicate(timeout=STOP_GRACE)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=STOP_GRACE)


def status(config: Config) -> list[dict[str, Any]]:
    """`status`: each hook's cursor, lag (events of its kinds not yet run for), failures in
    a row, last error and when it is tried again."""
    if not config.hooks or not exists(config.store):
        return []
    rows = []
    with reading(config.store) as db:
        for hook in config.hooks:
            state = hook_state.get(db, hook.name) or {"cursor": None, "failures": 0,
                                                     "last_error": None}
            rows.append({
                "hook": hook.name, "on": ",".join(hook.on), "cursor": state["cursor"],
                "lag": events.count_after(db, state["cursor"] or 0, hook.on)
                if state["cursor"] is not None else None,
                "failures": state["failures"],
                "last_error": state["last_error"] if state["failures"] else None,
                "retry_in": round(hook_state.waiting(db, hook.name)) or None})
    return rows
