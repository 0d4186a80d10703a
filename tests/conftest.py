"""Every test runs in its own home: config, data and keyring folders live in tmp_path, so no
test reads the developer's real config or secrets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import tomli_w
from typer.testing import CliRunner

from mailbridge.cli.app import app
from mailbridge.connectors.drop import deliver, make_spool

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus"
SAMPLES = REPO / "mailbridge" / "samples"


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.delenv("MAILBRIDGE_CONFIG", raising=False)
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    # keyrings.alt's file backend stands in for the OS keyring; it writes under XDG_DATA_HOME
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")
    import keyring.core

    keyring.core._keyring_backend = None  # re-read the backend from the environment
    return home


class Mailbridge:
    """Runs the CLI in-process with a config in tmp_path; returns Click results."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.config = root / "config.toml"
        self.store = root / "store" / "mailbridge.db"
        self.runner = CliRunner()

    def __call__(self, *args: str, input: bytes | str | None = None, env=None):
        return self.runner.invoke(app, ["--config", str(self.config), *args], input=input,
                                  env=env, catch_exceptions=False)

    def write_config(self, channels: list[dict], **top) -> None:
        data = {"store": {"path": str(self.store)}, "channel": channels, **top}
        self.config.write_text(tomli_w.dumps(data))

    def drop_channel(self, name: str = "support", **extra) -> Path:
        spool = self.root / "spool" / name
        make_spool(spool)
        channel = {"name": name, "main_email": "support@example.com",
                   "incoming": {"type": "drop", "spool": str(spool)}, **extra}
        existing = []
        if self.config.exists():
            import tomllib

            existing = tomllib.loads(self.config.read_text()).get("channel", [])
        self.write_config(existing + [channel])
        return spool


@pytest.fixture
def mb(tmp_path: Path) -> Mailbridge:
    return Mailbridge(tmp_path)


def drop(spool: Path, raw: bytes, name: str | None = None) -> Path:
    name = name or f"{os.urandom(6).hex()}.test"
    return deliver(spool, name, raw)


def message(subject: str = "Hello", sender: str = "ann@customer.example",
            message_id: str | None = "m1@customer.example", extra: str = "",
            body: str = "Hi there.") -> bytes:
    mid = f"Message-ID: <{message_id}>\n" if message_id else ""
    return (f"From: Ann <{sender}>\nTo: support@example.com\nSubject: {subject}\n{mid}"
            f"Date: Mon, 16 Nov 2026 09:00:00 +0000\n{extra}"
            f"Content-Type: text/plain; charset=utf-8\n\n{body}\n").encode()


def _servers_required() -> bool:
    return os.environ.get("MAILBRIDGE_REQUIRE_SERVERS") == "1"


@pytest.fixture(scope="session")
def dovecot():
    """One real Dovecot for the session; a missing one skips locally and fails in CI."""
    from servers.dovecot import Dovecot

    try:
        server = Dovecot()
        server.start()
    except Exception as exc:  # noqa: BLE001 - any failure to start is reported the same way
        if _servers_required():
            pytest.fail(f"Dovecot is required (MAILBRIDGE_REQUIRE_SERVERS=1): {exc}")
        pytest.skip(f"no Dovecot: {exc}")
    yield server
    server.close()


@pytest.fixture
def imap_user(dovecot):
    return dovecot.add_user()
