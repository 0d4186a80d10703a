"""The keyring the tests use instead of the OS one, chosen by conftest with
PYTHON_KEYRING_BACKEND: entries live in a JSON file under $XDG_DATA_HOME, which conftest
points into each test's tmp_path, so a command run in-process and one run as a subprocess see
the same entries, and nothing is installed into (or read from) the user's environment."""

from __future__ import annotations

import json
import os
from pathlib import Path

from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError


class TmpKeyring(KeyringBackend):
    priority = 1  # type: ignore[assignment]

    @property
    def file_path(self) -> Path:
        return Path(os.environ["XDG_DATA_HOME"]) / "mailbridge-test-keyring.json"

    def _entries(self) -> dict[str, str]:
        try:
            return json.loads(self.file_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}

    def get_password(self, service: str, username: str) -> str | None:
        return self._entries().get(f"{service}/{username}")

    def set_password(self, service: str, username: str, password: str) -> None:
        entries = self._entries()
        entries[f"{service}/{username}"] = password
        self.file_path.parent.mkdir(parents=True, exist_ok=True)
        self.file_path.write_text(json.dumps(entries), encoding="utf-8")

    def delete_password(self, service: str, username: str) -> None:
        entries = self._entries()
        if entries.pop(f"{service}/{username}", None) is None:
            raise PasswordDeleteError(username)
        self.file_path.write_text(json.dumps(entries), encoding="utf-8")


class PlaintextKeyring(TmpKeyring):
    """Stands in for keyrings.alt's PlaintextKeyring (base64 in a file anyone with the user's
    file access can read), which the tests no longer install: mailbridge must refuse it."""
