"""`secrets set/check`: store a value in the keyring; check that every reference resolves."""

from __future__ import annotations

from typing import Any

from mailbridge.config.model import Config
from mailbridge.config.secrets import describe, references, resolve, store_in_keyring
from mailbridge.errors import MailbridgeError


def set_secret(name: str, value: str) -> None:
    store_in_keyring(name, value)


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
