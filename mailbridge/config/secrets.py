"""Secret references: `{ keyring = "mailbridge/NAME" }`, `{ env = "VAR" }`, `{ file = "PATH" }`,
`{ command = [...] }`. Values are resolved only when a connection needs them and are
registered with the redactor, so no log line or error can carry them."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from mailbridge import redact
from mailbridge.errors import SecretError

KEYRING_SERVICE = "mailbridge"
NO_BACKEND_HINT = (
    "no OS keyring backend is usable on this host; install one (e.g. gnome-keyring, or "
    "`pip install keyrings.alt`) or use { env = \"VAR\" }, { file = \"/run/credentials/…\" } or "
    "{ command = [\"pass\", \"show\", \"…\"] } in the config instead"
)


def describe(ref: dict[str, Any]) -> str:
    kind, value = next(iter(ref.items()))
    return f"{kind} {' '.join(value) if kind == 'command' else value}"


def _keyring():
    import keyring
    from keyring.backends import fail

    try:
        backend = keyring.get_keyring()
    except Exception as exc:  # noqa: BLE001 - keyring raises whatever the named backend raises
        # Only a backend named by PYTHON_KEYRING_BACKEND or keyringrc.cfg can fail here:
        # keyring's own detection skips backends that cannot load.
        raise SecretError(f"the keyring backend chosen by PYTHON_KEYRING_BACKEND or "
                          f"keyringrc.cfg cannot be used ({type(exc).__name__}: {exc})",
                          "name an installed, working backend there, or remove the setting "
                          "to let keyring pick one") from None
    if isinstance(backend, fail.Keyring) or getattr(backend, "priority", 1) <= 0:
        raise SecretError("no keyring backend", NO_BACKEND_HINT)
    return keyring


def resolve(ref: dict[str, Any]) -> str:
    kind, value = next(iter(ref.items()))
    if kind == "keyring":
        import keyring.errors

        try:
            found = _keyring().get_password(KEYRING_SERVICE, value)
        except keyring.errors.KeyringError as exc:
            raise SecretError(f"keyring entry {value}: {type(exc).__name__}",
                              NO_BACKEND_HINT) from None
        if found is None:
            raise SecretError(f"keyring entry {value} is missing",
                              f"store it with `mailbridge secrets set {value}`")
    elif kind == "env":
        found = os.environ.get(value)
        if not found:
            raise SecretError(f"environment variable {value} is not set")
    elif kind == "file":
        try:
            found = Path(value).expanduser().read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise SecretError(f"secret file {value}: {exc.strerror}") from None
    else:
        found = _run(value)
    redact.register(found)
    return found


def _run(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SecretError(f"secret command {argv[0]} failed: {type(exc).__name__}") from None
    if done.returncode != 0:
        raise SecretError(f"secret command {argv[0]} exited with status {done.returncode}")
    return done.stdout.rstrip("\r\n")


def store_in_keyring(name: str, value: str) -> None:
    import keyring.errors

    try:
        _keyring().set_password(KEYRING_SERVICE, name, value)
    except keyring.errors.KeyringError as exc:
        raise SecretError(f"keyring entry {name}: {type(exc).__name__}", NO_BACKEND_HINT) from None


def read_optional(ref: dict[str, Any]) -> str | None:
    """A stored value that may not exist yet (a token cache before the first sign-in)."""
    kind, value = next(iter(ref.items()))
    if kind == "file" and not Path(value).expanduser().exists():
        return None
    if kind == "keyring":
        import keyring.errors

        try:
            return _keyring().get_password(KEYRING_SERVICE, value)
        except keyring.errors.KeyringError as exc:
            raise SecretError(f"keyring entry {value}: {type(exc).__name__}",
                              NO_BACKEND_HINT) from None
    return resolve(ref)


def write(ref: dict[str, Any], data: str) -> None:
    """Store a value mailbridge itself produces (token caches): keyring entries and files
    only; a file is replaced atomically and readable by its owner alone."""
    kind, value = next(iter(ref.items()))
    if kind == "keyring":
        store_in_keyring(value, data)
    elif kind == "file":
        from mailbridge.config.write import replace_file

        try:
            replace_file(Path(value).expanduser(), data)
        except OSError as exc:
            raise SecretError(f"secret file {value}: {exc.strerror}") from None
    else:
        raise SecretError(f"{describe(ref)} cannot be written by mailbridge",
                          "use { keyring = \"…\" } or { file = \"…\" } for token_cache")


def references(config_data: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every secret reference in the config, with the key path where it sits."""
    found: list[tuple[str, dict[str, Any]]] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            if len(node) == 1 and next(iter(node)) in ("keyring", "env", "file", "command") \
                    and path.rsplit(".", 1)[-1] in ("password", "client_secret"):
                found.append((path, node))
                return
            for k, v in node.items():
                walk(v, f"{path}.{k}" if path else k)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                label = v.get("name", i) if isinstance(v, dict) else i
                walk(v, f"{path}.{label}")

    walk(config_data, "")
    return found
