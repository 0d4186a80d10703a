"""`mailbridge events`: the store's event stream (store/events.py) for scripts, read from a
cursor, once or following it as it grows."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from mailbridge.config.model import Config
from mailbridge.domain.checks import did_you_mean
from mailbridge.errors import UsageError
from mailbridge.store import events
from mailbridge.store.session import exists, reading

KINDS = events.KINDS
POLL_SECONDS = 1.0  # how often --follow looks for new events
BATCH = 500  # events read at a time


def check_kinds(given: Sequence[str]) -> tuple[str, ...]:
    """The event kinds a `--kind` list (or a hook's `on`) names; an unknown one is one line
    naming the allowed ones."""
    for kind in given:
        if kind not in KINDS:
            raise UsageError(f"no event kind called {kind!r}{did_you_mean(kind, KINDS)} "
                             f"(known: {', '.join(KINDS)})")
    return tuple(dict.fromkeys(given))


def shown(event: dict[str, Any]) -> dict[str, Any]:
    """An event as scripts and hooks get it: its id as `cursor`, to resume after."""
    return {"cursor": event["id"], **{k: v for k, v in event.items() if k != "id"}}


def read(config: Config, after: int = 0, kinds: Sequence[str] = (),
         limit: int | None = None) -> list[dict[str, Any]]:
    """Events after `after`, oldest first (at most `limit`)."""
    if not exists(config.store):
        return []
    found: list[dict[str, Any]] = []
    with reading(config.store) as db:
        while limit is None or len(found) < limit:
            want = BATCH if limit is None else min(BATCH, limit - len(found))
            batch = events.after(db, after, kinds, want)
            found += [shown(e) for e in batch]
            if len(batch) < want:
                break
            after = batch[-1]["id"]
    return found


def follow(config: Config, after: int, kinds: Sequence[str], stopped: Callable[[], bool],
           interval: float = POLL_SECONDS) -> Iterator[dict[str, Any]]:
    """Events after `after` as they are committed, until `stopped()`: read every `interval`
    seconds on one read-only connection. Events commit in cursor order (store/events.py), so
    `id > cursor` misses none."""
    while not exists(config.store):  # nothing written yet: wait for the first writer
        if _wait(stopped, interval):
            return
    with reading(config.store) as db:
        while not stopped():
            batch = events.after(db, after, kinds, BATCH)
            for event in batch:
                yield shown(event)
                after = event["id"]
            if len(batch) < BATCH and _wait(stopped, interval):
                return


def _wait(stopped: Callable[[], bool], seconds: float) -> bool:
    """Sleep `seconds` in short steps; whether we were stopped meanwhile."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if stopped():
            return True
        time.sleep(min(0.1, seconds))
    return stopped()
