"""Secret references: `{ keyring = "mailbridge/NAME" }`, `{ env = "VAR" }`, `{ file = "PATH" }`,
`{ command = [...] }`. Values are resolved only when a connection needs them and are
registered with the redactor, which masks them in what libraries and servers say about the
calls that carried them."""

from __future__ import annotations

import os
import subprocess
import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailbridge import redact
from mailbridge.errors import SecretError

if TYPE_CHECKING:
    from keyring.backend import KeyringBackend

KEYRING_SERVICE = "mailbridge"
ALTERNATIVES = (
    'use { env = "VAR" }, { file = "/run/credentials/…" } (systemd credentials) or '
    '{ command = ["pass", "show", "…"] } references in the config instead'
)
NO_BACKEND = ("no OS keyring backend is usable on this host (GNOME Keyring, KWallet, macOS "
              "Keychain…)")
NO_BACKEND_HINT = f"{NO_BACKEND}; {ALTERNATIVES}"


# How an error names where a secret came from
SOURCES = {"keyring": "keyring entry", "env": "environment variable", "file": "secret file",
           "command": "the output of secret command"}


def describe(ref: dict[str, Any]) -> str:
    kind, value = next(iter(ref.items()))
    return f"{kind} {' '.join(value) if kind == 'command' else value}"


def usable_backend() -> KeyringBackend:
    """The backend keyring chose, when one is usable at all (keyring is imported only when a
    reference needs it: its start-up shows in a cron poll, see README)."""
    import keyring

    try:
        backend = keyring.get_keyring()
    except Exception as exc:  # noqa: BLE001 - keyring raises whatever the named backend raises
        # Only a backend named by PYTHON_KEYRING_BACKEND or keyringrc.cfg can fail here:
        # keyring's own detection skips backends that cannot load.
        raise SecretError(f"the keyring backend chosen by PYTHON_KEYRING_BACKEND or "
                          f"keyringrc.cfg cannot be used ({type(exc).__name__}: {exc})",
                          "name an installed, working backend there, or remove the setting "
                          "to let keyring pick one") from None
    if getattr(backend, "priority", 1) <= 0:  # keyring's fail and null backends
        raise SecretError(NO_BACKEND, ALTERNATIVES)
    return backend


def _storing(backend: KeyringBackend) -> KeyringBackend:
    """The backend a write goes to: keyring's chainer (used when several backends are
    usable) writes to the first of its chain."""
    from keyring.backends.chainer import ChainerBackend

    if isinstance(backend, ChainerBackend) and backend.backends:
        return backend.backends[0]
    return backend


def backend_name(backend: KeyringBackend) -> str:
    cls = type(_storing(backend))
    return f"{cls.__module__}.{cls.__name__}"


def cleartext_store(backend: KeyringBackend) -> str | None:
    """Where `backend` would keep a secret readable by anyone who can read the user's files
    (keyrings.alt's PlaintextKeyring: base64 in keyring_pass.cfg), or None."""
    storing = _storing(backend)
    if any(cls.__name__ == "PlaintextKeyring" for cls in type(storing).__mro__):
        return str(getattr(storing, "file_path", "a plain file"))
    return None


def cleartext_error(backend: KeyringBackend) -> SecretError | None:
    where = cleartext_store(backend)
    if where is None:
        return None
    return SecretError(f"the keyring backend {backend_name(backend)} keeps secrets in clear in "
                       f"{where}", f"{ALTERNATIVES}; or remove that backend (keyrings.alt: `pip "
                       f"uninstall keyrings.alt`) so the OS keyring is used")


def writable_backend() -> KeyringBackend:
    """The keyring backend to store in: usable, and not one that writes a plain file."""
    backend = usable_backend()
    refused = cleartext_error(backend)
    if refused:
        raise refused
    return backend


def credential(text: str, where: str) -> str:
    """A secret as a login uses it: the first line of `text` (a file ends in a newline; `pass
    show` prints notes after the password), refused when empty or when it holds a control
    character, which would end or corrupt the protocol line that carries it."""
    first = text.split("\n", 1)[0].removesuffix("\r")
    if not first:
        raise SecretError(f"{where} is empty")
    bad = next((c for c in first if unicodedata.category(c) == "Cc"), None)
    if bad is not None:
        raise SecretError(f"{where} contains a control character (U+{ord(bad):04X})",
                          "store the secret alone on its first line")
    return first


def _stored(ref: dict[str, Any]) -> str | None:
    """What the reference holds, whole; None for a keyring entry or file that does not exist."""
    kind, value = next(iter(ref.items()))
    if kind == "keyring":
        import keyring.errors

        try:
            return usable_backend().get_password(KEYRING_SERVICE, value)
        except keyring.errors.KeyringError as exc:
            raise SecretError(f"keyring entry {value}: {type(exc).__name__}",
                              NO_BACKEND_HINT) from None
    if kind == "env":
        return os.environ.get(value, "")
    if kind == "file":
        try:
            return Path(value).expanduser().read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or "not UTF-8 text"
            raise SecretError(f"secret file {value}: {reason}") from None
    return _run(value)


def resolve(ref: dict[str, Any]) -> str:
    """The secret a login uses (see `credential`), registered with the redactor."""
    kind, value = next(iter(ref.items()))
    found = _stored(ref)
    if found is None and kind == "keyring":
        raise SecretError(f"keyring entry {value} is missing",
                          f"store it with `mailbridge secrets set {value}`")
    if found is None:
        raise SecretError(f"secret file {value}: No such file or directory")
    if kind == "env" and not found:
        raise SecretError(f"environment variable {value} is not set")
    secret = credential(found, f"{SOURCES[kind]} {value[0] if kind == 'command' else value}")
    redact.register(secret)
    return secret


def _run(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SecretError(f"secret command {argv[0]} failed: {type(exc).__name__}") from None
    if done.returncode != 0:
        raise SecretError(f"secret command {argv[0]} exited with status {done.returncode}")
    return done.stdout


def store_in_keyring(name: str, value: str) -> None:
    """Keep a value in the OS keyring; never in a backend that writes it to a plain file."""
    import keyring.errors

    backend = writable_backend()
    try:
        backend.set_password(KEYRING_SERVICE, name, value)
    except keyring.errors.KeyringError as exc:
        raise SecretError(f"keyring entry {name}: {type(exc).__name__}", NO_BACKEND_HINT) from None


def read_optional(ref: dict[str, Any]) -> str | None:
    """A document mailbridge stored that may not exist yet (a token cache before the first
    sign-in), whole: it is not a login secret, so no first-line rule applies."""
    return _stored(ref) or None


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
                    and path.rsplit(".", 1)[-1] in ("password", "client_secret",
                                                    "token_cache_key"):
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
