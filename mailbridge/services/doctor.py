"""`doctor`: is the config valid, the store current and intact, the keyring usable, each
channel healthy (by the same rules as `status`) and, unless offline, each connection
reachable?"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mailbridge.config import secrets
from mailbridge.config.load import load_config
from mailbridge.config.model import Channel, Config
from mailbridge.errors import MailbridgeError, SecretError
from mailbridge.services import fleet, health
from mailbridge.services.connectors import test_connection
from mailbridge.services.outgoing import test_alerts_outgoing
from mailbridge.store import info as store_info
from mailbridge.store import messages, outbox, runs
from mailbridge.store.db import Store
from mailbridge.store.session import exists, reading

OK, WARN, FAIL = "ok", "warn", "fail"


def _check(name: str, status: str, detail: str) -> dict[str, str]:
    return {"check": name, "status": status, "detail": detail}


def keyring_check() -> dict[str, str]:
    """No keyring is a warning (env, file and command references work without one); one that
    keeps secrets in a plain file is a failure."""
    try:
        backend = secrets.usable_backend()
    except SecretError as exc:
        return _check("keyring", WARN, _text(exc))
    refused = secrets.cleartext_error(backend)
    if refused:
        return _check("keyring", FAIL, _text(refused))
    return _check("keyring", OK, secrets.backend_name(backend))


def _text(exc: MailbridgeError) -> str:
    return exc.message + (f" ({exc.hint})" if exc.hint else "")


def diagnose(config_path: Path, connect: bool = True) -> list[dict[str, Any]]:
    try:
        config = load_config(config_path)
    except MailbridgeError as exc:
        problems = getattr(exc, "problems", [str(exc)])
        return [_check("config", FAIL, p) for p in problems] + [keyring_check()]
    checks = [_check("config", OK, f"{config.path}: {len(config.channels)} channel(s)"),
              keyring_check(), *_store_checks(config)]
    if connect:
        checks += [_connection_check(c) for c in config.channels if c.enabled]
        if config.alerts.outgoing is not None:
            checks.append(_alerts_outgoing_check(config))
    return checks


def _alerts_outgoing_check(config: Config) -> dict[str, str]:
    name = "alerts outgoing"
    try:
        found = test_alerts_outgoing(config)
    except MailbridgeError as exc:
        return _check(name, FAIL, _text(exc))
    where = (f" {found['host']}:{found['port']}" if "host" in found
             else f" {found['program']}" if "program" in found else "")
    return _check(name, OK, f"{found['type']}{where}: ready to send alert mail")


SKEW_WARN_SECONDS = 5.0


def _store_checks(config: Config) -> list[dict[str, str]]:
    where = store_info.describe(config.store)
    blocked = store_info.unwritable(config.store)
    writable = [_check("store writable", FAIL, f"{blocked}: sync, ingest and run cannot write "
                                               "the store")] if blocked else []
    try:
        if not exists(config.store):
            return writable or [_check("store", WARN, f"{where}: not created yet "
                                                      "(the first `mailbridge sync` creates it)")]
        with reading(config.store) as db:
            found = store_info.summary(config.store, db)
            now = datetime.now(UTC)
            return [_check("store", OK, f"{where}: {found['version']}, schema version "
                                        f"{found['schema_version']}"),
                    *writable, *_clock_check(db), _integrity_check(config, db),
                    _outbox_check(db, config, now),
                    *(_channel_check(db, config, channel, now) for channel in config.channels),
                    *(c for channel in config.channels for c in _unparsed_check(db, channel))]
    except MailbridgeError as exc:
        return [*writable, _check("store", FAIL, str(exc))]


def _clock_check(db: Store) -> list[dict[str, str]]:
    skew = store_info.clock_skew(db)
    if skew is None:
        return []
    if round(abs(skew), 1) == 0:  # (its sign, at this size, changes from run to run)
        detail = "this host's clock is within 0.1 s of the database's"
    else:
        detail = (f"this host's clock is {abs(skew):.1f} s "
                  f"{'behind' if skew > 0 else 'ahead of'} the database's")
    if abs(skew) > SKEW_WARN_SECONDS:
        return [_check("clock", WARN, detail + " (leases are timed by the database; keep "
                                               "hosts in sync with NTP)")]
    return [_check("clock", OK, detail)]


def _integrity_check(config: Config, db: Store) -> dict[str, str]:
    problems = store_info.integrity(config.store, db)
    if not problems:
        return _check("store integrity", OK, "ok")
    return _check("store integrity", FAIL, "; ".join(problems))


STUCK_AFTER = timedelta(hours=1)


def _outbox_check(db: Store, config: Config, now: datetime) -> dict[str, str]:
    """Mail that needs a person (failed, unknown) or has waited too long to go out."""
    rows = outbox.list_rows(db, (outbox.PENDING, outbox.FAILED, outbox.UNKNOWN),
                            fleet.sending_alive(db, config))
    stuck = [r for r in rows if r["state"] != outbox.PENDING
             or now - datetime.fromisoformat(r["created_at"]) > STUCK_AFTER]
    if not stuck:
        return _check("outbox", OK, f"{len(rows)} waiting to be sent")
    counts = ", ".join(f"{n} {state}" for state, n in
                       sorted(Counter(r["state"] for r in stuck).items()))
    return _check("outbox", FAIL, f"{counts} (pending over an hour counts too): see "
                                  "`mailbridge outbox list`, then retry or cancel")


def _channel_check(db: Store, config: Config, channel: Channel,
                   now: datetime) -> dict[str, str]:
    name = f"channel {channel.name}"
    if not channel.enabled:
        return _check(name, OK, "disabled")
    last = runs.latest(db, channel.name)
    success = runs.last_success(db, channel.name)
    newest = messages.newest_received(db, channel.name)
    if last is None and newest is None:
        return _check(name, WARN, "never synced")
    problems = health.judge(db, config, channel, now)
    if problems:
        return _check(name, FAIL, "; ".join(c.detail for c in problems))
    if last is None:  # fed by `ingest` alone
        return _check(name, OK, f"no sync yet; latest mail {newest}")
    if last["status"] == "ok":
        return _check(name, OK, f"last success {success}")
    return _check(name, WARN, f"last run {last['status']}: {last['error']}; "
                              f"last success {success or 'never'}")


def _unparsed_check(db: Store, channel: Channel) -> list[dict[str, str]]:
    """Mail stored raw only is kept but filed nowhere: a person should look at it."""
    count = messages.unparsed_count(db, channel.name)
    if not count:
        return []
    return [_check(f"unparsed {channel.name}", WARN,
                   f"{count} message{'s' if count > 1 else ''} stored raw, not parsed: see "
                   "`mailbridge messages list --unparsed`; `mailbridge reprocess` after an "
                   "upgrade")]


def _connection_check(channel: Channel) -> dict[str, str]:
    name = f"connection {channel.name}"
    try:
        found = test_connection(channel)
    except MailbridgeError as exc:
        return _check(name, FAIL, _text(exc))
    if found["type"] == "drop":
        return _check(name, OK, f"spool {found['spool']}: {found['waiting']} waiting")
    if found["type"] == "m365":
        bad = [r for r in found["mailboxes"] if r["problem"]]
        detail = "; ".join(f"{r['mailbox']}: {r['problem']}" for r in bad) \
            or f"{len(found['mailboxes'])} mailbox(es) readable"
        return _check(name, FAIL if bad else OK, f"m365 app {found['app']}: {detail}")
    folders = ", ".join(f"{f['folder']} {f['unread']} unread" for f in found["synced"])
    return _check(name, OK, f"{found['type']} {found['host']}: login ok; {folders}")
