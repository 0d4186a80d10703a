"""`mailbridge run`: the foreground service. APScheduler fires one job per enabled channel on
its schedule (and once at start) — sync, alerts, then that channel's outbox — and an outbox
job every minute for replies queued in between. Jobs run one at a time in a single worker
thread and take the write lock for each commit only, so a piped `mailbridge ingest` or a
`tickets reply` gets in between batches. The service lock is held for the whole run, so a cron
`sync` beside it stops with exit 75.

Stopping (`stop` set by SIGTERM/SIGINT) ends the running job's fetch early and commits what
it fetched (see `pipeline.ingest`); a reload (`reload` set by SIGHUP) re-reads the config and
reschedules the jobs."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from mailbridge.config.model import Config
from mailbridge.domain.health import QUIET
from mailbridge.errors import MailbridgeError
from mailbridge.pipeline.report import FAILED, Outcome
from mailbridge.pipeline.send import DrainResult
from mailbridge.services import health, outgoing
from mailbridge.services.schedule import trigger_for
from mailbridge.services.sync import ChannelResult, send_outbox, send_problem, sync_channel
from mailbridge.store.db import Store, open_store
from mailbridge.store.lock import service_lock
from mailbridge.store.session import writing_per_commit

log = logging.getLogger("mailbridge.run")

SERVICE_LOCK_WAIT = 300.0  # a one-shot sync that is already running gets to finish
WRITE_LOCK_WAIT = 60.0  # others hold it for one transaction only
TICK_SECONDS = 0.5  # how often the main thread looks at the stop and reload flags
OUTBOX_SECONDS = 60


class _Quiet:
    """`run` logs one line per channel run, not one per message."""

    def item(self, channel: str, outcome: Outcome, size: int) -> None:
        if outcome.kind == FAILED:
            log.warning("%s: %s: %s", channel, outcome.ref.key, outcome.detail)


def serve(load: Callable[[], Config], stop: threading.Event, reload: threading.Event) -> None:
    """Run until `stop` is set. Raises MailbridgeError only for what prevents starting."""
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.schedulers.background import BackgroundScheduler

    config = load()
    for channel in config.channels:
        trigger_for(channel)  # a bad cron expression stops us here, with its path
    with service_lock(config.store_path, SERVICE_LOCK_WAIT):
        open_store(config.store_path).close()  # create or migrate it before the first job
        scheduler = BackgroundScheduler(
            timezone=UTC, executors={"default": ThreadPoolExecutor(1)},
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": None})
        _schedule(scheduler, config, stop)
        scheduler.start()
        log.info("serving %d channel(s) from %s", _enabled(config), config.path)
        try:
            while not stop.wait(TICK_SECONDS):
                if reload.is_set():
                    reload.clear()
                    config = _reload(scheduler, load, config, stop)
        finally:
            log.info("stopping: committing what the running job has fetched")
            scheduler.shutdown(wait=True)
    log.info("stopped")


def _enabled(config: Config) -> int:
    return sum(1 for c in config.channels if c.enabled)


def _schedule(scheduler: Any, config: Config, stop: threading.Event) -> None:
    scheduler.remove_all_jobs()
    now = datetime.now(UTC)
    for channel in config.channels:
        if channel.enabled:
            scheduler.add_job(_job, trigger_for(channel), args=[config, channel.name, stop],
                              id=channel.name, name=channel.name, next_run_time=now)
    scheduler.add_job(_outbox_job, "interval", seconds=OUTBOX_SECONDS, args=[config, stop],
                      id=" outbox", name="outbox")  # no channel name can start with a space


def _reload(scheduler: Any, load: Callable[[], Config], old: Config,
            stop: threading.Event) -> Config:
    try:
        new = load()
        for channel in new.channels:
            trigger_for(channel)
    except MailbridgeError as exc:
        log.error("config reload failed, keeping the running config: %s", exc)
        return old
    if new.store_path != old.store_path:
        log.error("config reload: [store] path changed; restart `mailbridge run` to switch "
                  "stores (keeping the running config)")
        return old
    _schedule(scheduler, new, stop)
    log.info("config reloaded: %d channel(s)", _enabled(new))
    return new


def _job(config: Config, name: str, stop: threading.Event) -> None:
    """One scheduled sync of one channel, then the alert check; never raises (a raising job
    would only be logged by APScheduler, with a traceback)."""
    if stop.is_set():
        return
    channel = config.require(name)

    def work(db: Store) -> None:
        _log_result(sync_channel(db, config, channel, _Quiet(), should_stop=stop.is_set))
        events = health.update_alerts(db, config, datetime.now(UTC))
        health.deliver(config, events)
        with db.atomic():
            for event in events:
                if event.kind == QUIET:  # the agents' "notify when no messages" opt-in
                    outgoing.queue_alert_mail(
                        db, config, event.channel,
                        f"mailbridge: channel {event.channel}: {event.kind} alert "
                        f"{event.event}", f"{event.detail}\n\n(at {event.at})")
        # every channel's outbox: alert mail goes out through the quiet channel's connection
        _log_sends(send_outbox(db, config, [], stop.is_set))

    _with_store(config, name, work)


def _outbox_job(config: Config, stop: threading.Event) -> None:
    _with_store(config, "outbox",
                lambda db: _log_sends(send_outbox(db, config, [], stop.is_set)))


def _with_store(config: Config, what: str, work: Callable[[Store], None]) -> None:
    try:
        with writing_per_commit(config.store_path, WRITE_LOCK_WAIT) as db:
            work(db)
    except MailbridgeError as exc:
        log.error("%s: not done: %s", what, exc)
    except Exception:  # noqa: BLE001 - one broken run must not end the service
        log.exception("%s: internal error; the next run will try again", what)


def _log_sends(results: list[DrainResult]) -> None:
    for result in results:
        problem = send_problem(result)
        if problem:
            log.warning("%s: outbox: %s", result.channel, problem)
        if result.sent or problem:
            log.info("%s: outbox: %d sent, %d to retry, %d failed, %d unknown", result.channel,
                     result.sent, result.retry, result.failed, result.unknown)


def _log_result(result: ChannelResult) -> None:
    c = result.counts
    stopped = " (stopped early; the rest comes next run)" if c.stopped else ""
    if result.status == "ok":
        log.info("%s: ok: %d new, %d already stored%s", result.channel, c.stored, c.duplicates,
                 stopped)
    else:
        log.warning("%s: %s: %s%s", result.channel, result.status, result.problem, stopped)
