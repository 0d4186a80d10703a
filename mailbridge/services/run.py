"""`mailbridge run`: the foreground service. APScheduler fires one job per enabled channel on
its schedule (and once at start) — sync, that channel's alerts, then the outbox — and a job
every minute for every channel's alerts and replies queued in between. Jobs run one at a
time in a single worker thread and take the write lock for each commit only, so a piped
`mailbridge ingest` or a `tickets reply` gets in between batches. The service lock is held for
the whole run, so a cron `sync` beside it stops with exit 75. On a shared (PostgreSQL) store
one job instead claims whatever channel is due and free (services/fleet.py, store/leases.py).
Each [[hook]] is a job of its own, every second, on a thread pool of the hooks' own, so a slow
or failing hook holds up neither the syncs nor the other hooks (services/hooks.py).

Stopping (`stop` set by SIGTERM/SIGINT) ends the running job's fetch early and commits what
it fetched (see `pipeline.ingest`); a reload (`reload` set by SIGHUP) re-reads the config and
reschedules the jobs."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from mailbridge.config.model import Channel, Config
from mailbridge.errors import MailbridgeError
from mailbridge.pipeline.report import FAILED, Outcome
from mailbridge.pipeline.send import DrainResult
from mailbridge.services import fleet, health, hooks
from mailbridge.services.schedule import trigger_for
from mailbridge.services.sync import ChannelResult, send_outbox, sync_channel
from mailbridge.store import leases
from mailbridge.store.backends import connection
from mailbridge.store.db import Store
from mailbridge.store.session import service_lock, writing_per_commit

log = logging.getLogger("mailbridge.run")

SERVICE_LOCK_WAIT = 300.0  # a one-shot sync that is already running gets to finish
WRITE_LOCK_WAIT = 60.0  # others hold it for one transaction only
TICK_SECONDS = 0.5  # how often the main thread looks at the stop and reload flags
OUTBOX_SECONDS = 60
CLAIM_SECONDS = 2  # shared store: how often a host looks for due channels
CLAIM_JOB = " claim"  # no channel name can start with a space
HOOK_SECONDS = 1  # how often each hook looks for new events
HOOK_THREADS = 4  # hooks whose commands can run at the same time (store/postgres.py POOL_SIZE)


class _Quiet:
    """`run` logs one line per channel run, not one per message."""

    def item(self, channel: str, outcome: Outcome, size: int) -> None:
        if outcome.kind == FAILED:
            log.warning("%s: %s: %s", channel, outcome.ref.key, outcome.detail)


class _ClaimTicksSkipped(logging.Filter):
    """The claim job works as long as something is due, so its next ticks find it still
    running; APScheduler would log a warning for each of them."""

    def filter(self, record: logging.LogRecord) -> bool:
        job = record.args[0] if isinstance(record.args, tuple) and record.args else None
        return not (getattr(job, "id", None) == CLAIM_JOB and "skipped" in str(record.msg))


_CLAIM_TICKS_SKIPPED = _ClaimTicksSkipped()  # one instance: added again, it is not doubled


def serve(load: Callable[[], Config], stop: threading.Event, reload: threading.Event) -> None:
    """Run until `stop` is set. Raises MailbridgeError only for what prevents starting."""
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.schedulers.background import BackgroundScheduler

    config = load()
    logging.getLogger("apscheduler.scheduler").addFilter(_CLAIM_TICKS_SKIPPED)
    with service_lock(config.store, SERVICE_LOCK_WAIT):
        with connection(config.store) as db:  # create or migrate it before the first job
            heartbeat = fleet.Heartbeat(config).start() if db.shared else None
            hooks.prepare(db, config.hooks)  # before the first sync, whose events they get
        scheduler = BackgroundScheduler(
            timezone=UTC, executors={"default": ThreadPoolExecutor(1),
                                     "hooks": ThreadPoolExecutor(HOOK_THREADS)},
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": None})
        runners: dict[str, hooks.Runner] = {}
        _schedule(scheduler, config, stop, heartbeat, runners)
        scheduler.start()
        log.info("serving %d channel(s) from %s%s", _enabled(config), config.path,
                 f" as {heartbeat.owner}, sharing the store by leases" if heartbeat else "")
        try:
            while not stop.wait(TICK_SECONDS):
                if reload.is_set():
                    reload.clear()
                    config = _reload(scheduler, load, config, stop, heartbeat, runners)
        finally:
            log.info("stopping: committing what the running job has fetched")
            scheduler.shutdown(wait=True)
            for runner in runners.values():
                runner.close()
            if heartbeat is not None:
                heartbeat.stop()
    log.info("stopped")


def _enabled(config: Config) -> int:
    return sum(1 for c in config.channels if c.enabled)


def _schedule(scheduler: Any, config: Config, stop: threading.Event,
              heartbeat: fleet.Heartbeat | None, runners: dict[str, hooks.Runner]) -> None:
    """On SQLite a job per channel on its trigger. On a shared store, when each channel is
    due lives in the database (so it is synced once per interval across all hosts), and one
    job claims whatever is due every few seconds."""
    scheduler.remove_all_jobs()
    now = datetime.now(UTC)
    if heartbeat is not None:
        enabled = fleet.units([c for c in config.channels if c.enabled])
        _locked(config, "leases", lambda db: leases.ensure(db, enabled))
        scheduler.add_job(_claim_job, "interval", seconds=CLAIM_SECONDS,
                          args=[config, stop, heartbeat, enabled], id=CLAIM_JOB, name="claim",
                          next_run_time=now)
    else:
        for channel in config.channels:
            if channel.enabled and channel.syncs_here:
                scheduler.add_job(_job, trigger_for(channel),
                                  args=[config, channel.name, stop], id=channel.name,
                                  name=channel.name, next_run_time=now)
    scheduler.add_job(_outbox_job, "interval", seconds=OUTBOX_SECONDS, args=[config, stop],
                      id=" outbox", name="outbox")  # no channel name can start with a space
    _schedule_hooks(scheduler, config, stop, heartbeat, runners)


def _schedule_hooks(scheduler: Any, config: Config, stop: threading.Event,
                    heartbeat: fleet.Heartbeat | None, runners: dict[str, hooks.Runner]
                    ) -> None:
    """A job per hook; a hook the config no longer has gives its lease back."""
    wanted = {hook.name: hook for hook in config.hooks}
    for name in list(runners):
        if runners[name].hook != wanted.get(name):
            runners.pop(name).close()
    for name, hook in wanted.items():
        runner = runners.setdefault(name, hooks.Runner(config, hook, stop, heartbeat))
        scheduler.add_job(runner.tick, "interval", seconds=HOOK_SECONDS, executor="hooks",
                          id=f" hook:{name}", name=f"hook {name}",
                          next_run_time=datetime.now(UTC))


def _reload(scheduler: Any, load: Callable[[], Config], old: Config,
            stop: threading.Event, heartbeat: fleet.Heartbeat | None,
            runners: dict[str, hooks.Runner]) -> Config:
    try:
        new = load()
    except MailbridgeError as exc:
        log.error("config reload failed, keeping the running config: %s", exc)
        return old
    if new.store != old.store:
        log.error("config reload: [store] changed; restart `mailbridge run` to switch "
                  "stores (keeping the running config)")
        return old
    if heartbeat is not None:
        heartbeat.config = new
    _locked(new, "hooks", lambda db: hooks.prepare(db, new.hooks))
    _schedule(scheduler, new, stop, heartbeat, runners)
    log.info("config reloaded: %d channel(s)", _enabled(new))
    return new


def _job(config: Config, name: str, stop: threading.Event) -> None:
    """One scheduled sync of one channel, then the alert check; never raises (a raising job
    would only be logged by APScheduler, with a traceback)."""
    if stop.is_set():
        return
    channel = config.require(name)
    _locked(config, name, lambda db: _work(db, config, channel, stop.is_set))


def _claim_job(config: Config, stop: threading.Event, heartbeat: fleet.Heartbeat,
               units: list[fleet.Unit]) -> None:
    """Shared store: sync what is due and free, one unit at a time, until nothing is (or we
    are stopping). A unit another host claims first is simply not ours this time."""

    def claim_and_work(db: Store) -> bool:
        for unit in leases.due(db, units, fleet.dead_here):
            channel = fleet.unit_channel(config, unit)
            with fleet.holding(db, heartbeat, unit, channel, due_only=True) as lease:
                if lease is None:
                    continue
                _work(db, config, channel,
                      lambda: stop.is_set() or heartbeat.lost(lease), [lease])
                return True
        return False

    while not stop.is_set() and _locked(config, "claim", claim_and_work):
        pass


def _work(db: Store, config: Config, channel: Channel, should_stop: Callable[[], bool],
          held: list[leases.Lease] | None = None) -> bool:
    """A channel's sync, then the alert check, then the outbox."""
    _log_result(sync_channel(db, config, channel, _Quiet(), should_stop=should_stop,
                             held=held or ()))
    # this channel's alerts now; every channel's once a minute (the outbox job), so the
    # check after each run costs the same with 5 channels as with 500
    health.raise_and_notify(db, config, datetime.now(UTC), [channel.name])
    # every channel's outbox: alert mail goes out through the quiet channel's connection
    # (or [alerts] outgoing)
    _log_sends(send_outbox(db, config, [], should_stop))
    return True


def _outbox_job(config: Config, stop: threading.Event) -> None:
    """Every minute: the alert round over every channel (one whose schedule is long still
    goes quiet on time), then whatever the outbox holds (replies queued in between)."""

    def work(db: Store) -> None:
        health.raise_and_notify(db, config, datetime.now(UTC))
        _log_sends(send_outbox(db, config, [], stop.is_set))

    _locked(config, "outbox", work)


def _locked(config: Config, what: str, work: Callable[[Store], Any]) -> Any:
    """`work` on the store, whose write lock each of its transactions takes (so a piped
    `ingest` gets in between); its result, or None when it failed (logged)."""
    try:
        with writing_per_commit(config.store, WRITE_LOCK_WAIT) as db:
            return work(db)
    except MailbridgeError as exc:
        log.error("%s: not done: %s", what, exc)
    except Exception:  # noqa: BLE001 - one broken run must not end the service
        log.exception("%s: internal error; the next run will try again", what)
    return None


def _log_sends(results: list[DrainResult]) -> None:
    """A line for each outbox row a drain touched, then the channel's counts."""
    for result in results:
        for row in result.rows:
            log.log(logging.WARNING if row.problem else logging.INFO, "%s: %s",
                    result.channel, row.line())
        if result.rows:
            log.info("%s: outbox: %s", result.channel, result.summary())


def _log_result(result: ChannelResult) -> None:
    c = result.counts
    stopped = " (stopped early; the rest comes next run)" if c.stopped else ""
    if result.status == "ok":
        log.info("%s: ok: %d new, %d already stored%s", result.channel, c.stored, c.duplicates,
                 stopped)
    else:
        log.warning("%s: %s: %s%s", result.channel, result.status, result.problem, stopped)
