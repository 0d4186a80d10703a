"""`doctor`: is the config valid, the store current, the keyring usable, each channel healthy?"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mailbridge.config.load import load_config
from mailbridge.config.secrets import NO_BACKEND_HINT
from mailbridge.errors import MailbridgeError
from mailbridge.store import runs
from mailbridge.store.db import open_store, schema_status

OK, WARN, FAIL = "ok", "warn", "fail"


def _check(name: str, status: str, detail: str) -> dict[str, str]:
    return {"check": name, "status": status, "detail": detail}


def keyring_check() -> dict[str, str]:
    import keyring
    from keyring.backends import fail

    backend = keyring.get_keyring()
    if isinstance(backend, fail.Keyring):
        return _check("keyring", WARN, NO_BACKEND_HINT)
    return _check("keyring", OK, type(backend).__module__ + "." + type(backend).__name__)


def diagnose(config_path: Path) -> list[dict[str, Any]]:
    try:
        config = load_config(config_path)
    except MailbridgeError as exc:
        problems = getattr(exc, "problems", [str(exc)])
        return [_check("config", FAIL, p) for p in problems] + [keyring_check()]
    checks = [_check("config", OK, f"{config.path}: {len(config.channels)} channel(s)"),
              keyring_check()]
    if not config.store_path.exists():
        checks.append(_check("store", WARN, f"{config.store_path}: not created yet "
                                            "(the first `mailbridge sync` creates it)"))
        return checks
    try:
        db = open_store(config.store_path, readonly=True)
    except MailbridgeError as exc:
        return checks + [_check("store", FAIL, str(exc))]
    try:
        applied, pending = schema_status(db)
        checks.append(_check("store", OK, f"{config.store_path}: schema version {applied}"))
        for channel in config.channels:
            checks.append(_channel_check(db, channel.name, channel.enabled))
    finally:
        db.close()
    return checks


def _channel_check(db, name: str, enabled: bool) -> dict[str, str]:
    if not enabled:
        return _check(f"channel {name}", OK, "disabled")
    last = runs.latest(db, name)
    success = runs.last_success(db, name)
    if last is None:
        return _check(f"channel {name}", WARN, "never synced")
    if last["status"] == "ok":
        return _check(f"channel {name}", OK, f"last success {success}")
    return _check(f"channel {name}", FAIL if last["status"] == "failed" else WARN,
                  f"last run {last['status']}: {last['error']}; last success {success or 'never'}")
