"""Channel health for `status` and the alerts `run` raises: facts from the store, judged by
domain/health.py, and alert delivery (the log, and `[alerts] command` with JSON on stdin)."""

from __future__ import annotations

import json
import logging
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from mailbridge.config.model import Channel, Config
from mailbridge.domain.health import QUIET, ChannelFacts, Condition, UnsentMail, conditions
from mailbridge.store import alerts, leases, messages, outbox, runs, tickets
from mailbridge.store.db import Store
from mailbridge.store.session import exists, reading, service_pid

log = logging.getLogger("mailbridge.alerts")

ALERT_COMMAND_SECONDS = 30
RAISED, RECOVERED = "raised", "recovered"


def _time(stamp: str | None) -> datetime | None:
    return datetime.fromisoformat(stamp) if stamp else None


def facts(db: Store, channel: Channel) -> ChannelFacts:
    """A channel is watched from its first sync or, fed only by `ingest`, its first mail."""
    failures, error = runs.consecutive_failures(db, channel.name)
    started = [t for t in (runs.first_start(db, channel.name),
                           messages.oldest_received(db, channel.name)) if t]
    return ChannelFacts(channel.name, channel.enabled,
                        _time(messages.newest_received(db, channel.name)),
                        _time(min(started, key=datetime.fromisoformat) if started else None),
                        failures, error,
                        tuple(UnsentMail(*row) for row in outbox.unsent(db, channel.name)))


def judge(db: Store, config: Config, channel: Channel, now: datetime) -> list[Condition]:
    return _judged(config, channel, facts(db, channel), now)


def _judged(config: Config, channel: Channel, found: ChannelFacts,
            now: datetime) -> list[Condition]:
    return conditions(found, channel.no_messages_hours, config.alerts.after_failures, now)


def status_row(db: Store, config: Config, channel: Channel, now: datetime,
               serving: bool, lease: LeaseView | None = None) -> dict[str, Any]:
    """`lease`: on a shared store, who holds the channel and when it is due (from the
    database, which keeps the schedule there); None on SQLite."""
    from mailbridge.services.schedule import next_run

    found = facts(db, channel)
    last_day = messages.received_since(
        db, channel.name, (now - timedelta(hours=24)).isoformat(timespec="seconds"))
    problems = _judged(config, channel, found, now)
    upcoming = None
    if lease is not None:
        if serving and channel.enabled and lease.due_in is not None:
            upcoming = now + timedelta(seconds=max(0.0, lease.due_in))
    elif serving and channel.enabled:
        upcoming = next_run(channel, _time(runs.last_start(db, channel.name)), now)
    shared = {} if lease is None else {"held_by": lease.held_by}
    return {
        "channel": channel.name,
        "title": channel.title,
        "enabled": channel.enabled,
        "mode": channel.mode,
        "incoming": channel.incoming.get("type"),
        "mailbox": channel.incoming.get("username") or channel.incoming.get("mailboxes") or "",
        "health": ("disabled" if not channel.enabled
                   else ",".join(c.kind for c in problems)
                   or ("ok" if found.watching_since else "never synced")),
        "last_success": runs.last_success(db, channel.name),
        "last_message": found.last_message.isoformat() if found.last_message else None,
        "messages_24h": last_day,
        "failures": found.failures,
        "last_error": found.last_error if found.failures else None,
        "next_run": upcoming.isoformat(timespec="seconds") if upcoming else None,
        "schedule": channel.schedule,
        "outbox": outbox.depth(db, channel.name),
        "problems": [c.detail for c in problems],
        "unparsed": messages.unparsed_count(db, channel.name),
        "unsent": len(found.unsent),
        "unassigned": tickets.unassigned_open(db, channel.name),  # open, nobody on them
        **shared,
    }


@dataclass(frozen=True)
class AlertEvent:
    event: str  # RAISED | RECOVERED
    channel: str
    kind: str
    detail: str
    at: str

    def as_dict(self) -> dict[str, str]:
        return {"event": self.event, "channel": self.channel, "kind": self.kind,
                "detail": self.detail, "at": self.at}


def update_alerts(db: Store, config: Config, now: datetime,
                  names: Sequence[str] | None = None) -> list[AlertEvent]:
    """Raise what newly went wrong, clear what recovered; each only once. `names`: only these
    channels (a `sync` of some channels), else every one."""
    current = {(c.channel, c.kind): c for ch in config.channels
               if not names or ch.name in names for c in judge(db, config, ch, now)}
    events = []
    with db.atomic():
        db.lock("alerts")  # hosts sharing a store raise and clear each alert once
        open_now = {(a["channel"], a["kind"]): a for a in alerts.open_alerts(db)
                    if not names or a["channel"] in names}
        for key, alert in open_now.items():
            if key not in current:
                stamp = alerts.clear(db, alert["id"])
                events.append(AlertEvent(RECOVERED, alert["channel"], alert["kind"],
                                         f"recovered after: {alert['detail']}", stamp))
        for key, condition in current.items():
            if key not in open_now:
                alerts.raise_alert(db, condition.channel, condition.kind, condition.detail)
                events.append(AlertEvent(RAISED, condition.channel, condition.kind,
                                         condition.detail,
                                         now.astimezone(UTC).isoformat(timespec="seconds")))
    return events


def deliver(config: Config, events: list[AlertEvent], logged: bool = True) -> None:
    """To the log (unless the caller reports them itself); to the alert command when one is
    configured. A failing command is logged, never fatal: alerting must not stop the
    syncing it reports on."""
    for event in events:
        level = logging.WARNING if event.event == RAISED else logging.INFO
        if logged:
            log.log(level, "%s: alert %s: %s: %s", event.channel, event.event, event.kind,
                    event.detail)
        if not config.alerts.command:
            continue
        try:
            # one line per event, so a command that appends (`cat >> alerts.jsonl`) keeps
            # a JSON Lines file
            done = subprocess.run(list(config.alerts.command),
                                  input=json.dumps(event.as_dict()) + "\n", text=True,
                                  capture_output=True, timeout=ALERT_COMMAND_SECONDS,
                                  check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.error("alerts.command %s failed: %s", config.alerts.command[0], exc)
            continue
        if done.returncode:
            log.error("alerts.command %s exited %d: %s", config.alerts.command[0],
                      done.returncode, done.stderr.strip()[:200])


def raise_and_notify(db: Store, config: Config, now: datetime,
                     names: Sequence[str] | None = None, logged: bool = True
                     ) -> list[AlertEvent]:
    """The alert round `run` makes after each job and `sync` (cron) after its channels:
    raise and clear alerts, deliver them (log, `[alerts] command`), and queue each quiet
    alert and its recovery as mail to the agents with --notify-no-messages (Usedesk's "No
    messages (h)"), once per quiet period since an alert is raised only once."""
    events = update_alerts(db, config, now, names)
    deliver(config, events, logged)
    quiet = [e for e in events if e.kind == QUIET]
    if quiet:
        from mailbridge.services import outgoing  # composing mail: loaded only when needed

        with db.atomic():
            for event in quiet:
                outgoing.queue_alert_mail(
                    db, config, event.channel,
                    f"mailbridge: channel {event.channel}: {event.kind} alert {event.event}",
                    f"{event.detail}\n\n(at {event.at})")
    return events


def status(config: Config) -> list[dict[str, Any]]:
    """One row per channel (see `status_row`); read-only, never takes the write lock."""
    now = datetime.now(UTC)
    if not exists(config.store):
        return [_never_synced(ch) for ch in config.channels]
    with reading(config.store) as db:
        if not db.shared:
            serving = service_pid(config.store) is not None
            return [status_row(db, config, ch, now, serving) for ch in config.channels]
        views = lease_views(db, config)
        serving = bool(leases.alive(db, config.store.lease_seconds))
        return [status_row(db, config, ch, now, serving, views.get(ch.name, LeaseView()))
                for ch in config.channels]


@dataclass(frozen=True)
class LeaseView:
    held_by: str | None = None  # "host:pid (N s left)", per mailbox on Microsoft 365
    due_in: float | None = None  # seconds until its next sync is due (the soonest unit)


def lease_views(db: Store, config: Config) -> dict[str, LeaseView]:
    found: dict[str, list[dict[str, Any]]] = {}
    for row in leases.holders(db):
        found.setdefault(row["channel"], []).append(row)
    views = {}
    for name, rows in found.items():
        held = [f"{r['mailbox'] + ': ' if r['mailbox'] else ''}{r['owner']} "
                f"({max(0, round(r['expires_in'] or 0))} s left)" for r in rows if r["owner"]]
        due = [r["due_in"] for r in rows if r["due_in"] is not None]
        views[name] = LeaseView("; ".join(held) or None, min(due) if due else None)
    return views


def _never_synced(channel: Channel) -> dict[str, Any]:
    """No store yet: nothing to judge (the rules need a first sync to count from)."""
    return {"channel": channel.name, "title": channel.title, "enabled": channel.enabled,
            "mode": channel.mode, "incoming": channel.incoming.get("type"),
            "health": "never synced" if channel.enabled else "disabled",
            "messages_24h": 0, "failures": 0, "schedule": channel.schedule, "outbox": 0,
            "problems": [], "unparsed": 0, "unsent": 0, "unassigned": 0}


def healthy(rows: list[dict[str, Any]]) -> bool:
    return all(row["health"] in ("ok", "disabled") for row in rows)
