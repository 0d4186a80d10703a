"""`secrets set/check`: store a value in the keyring; check that every reference resolves."""

from __future__ import annotations

from typing import Any

from mailbridge.config.model import Config
from mailbridge.config.secrets import (
    credential,
    describe,
    references,
    resolve,
    store_in_keyring,
    writable_backend,
)
from mailbridge.errors import MailbridgeError


def check_keyring() -> None:
    """Raise before asking for a secret that the keyring could not (or should not) keep."""
    writable_backend()


def check_reference(ref: dict[str, Any]) -> None:
    """Raise when a reference gives no usable secret now (an unset variable, a missing
    file, a failing command), so that a wizard can ask again at once."""
    resolve(ref)


def set_secret(name: str, value: str) -> None:
    """Store a login secret: its first line, refused if it holds a control character."""
    store_in_keyring(name, credential(value, f"the value for {name}"))


def check_secrets(config: Config) -> list[dict[str, Any]]:
    """One row per reference; values are resolved to prove they exist, never returned."""
    rows = []
    for where, ref in references(config.data):
        try:
            resolve(ref)
            rows.append({"key": where, "reference": describe(ref), "ok": True, "problem": None})
        except MailbridgeError as exc:
            rows.append({"key": where, "reference": describe(ref), "ok": False,
                         "problem": str(exc)})
    return rows
