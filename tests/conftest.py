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


def sqlite_store(path: Path, readonly: bool = False):
    """An open SQLite store at `path` (created and migrated unless `readonly`)."""
    from mailbridge.config.model import StoreSettings
    from mailbridge.store.backends import backend

    return backend(StoreSettings.sqlite(path)).connect(readonly=readonly)


def schema_status(db) -> tuple[int, int]:
    """(applied, pending) migration counts."""
    from mailbridge.store import migrations

    return len(migrations.applied(db)), len(migrations.pending(db))


def _servers_required() -> bool:
    return os.environ.get("MAILBRIDGE_REQUIRE_SERVERS") == "1"


SECRET = "s3cr3t-value-for-tests"  # the fake's client secret for app "app-1"


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MB_TEST_SECRET", SECRET)


@pytest.fixture
def graph(secret_env):
    """The local HTTPS fake of the identity platform and Graph (tests/servers/graph.py): app
    "app-1" with SECRET, mailboxes a@, b@ and c@contoso.com."""
    from servers.graph import GraphFake

    fake = GraphFake()
    fake.add_app("app-1", SECRET)
    for box in ("a@contoso.com", "b@contoso.com", "c@contoso.com"):
        fake.add_mailbox(box)
    yield fake
    fake.close()


def m365_config(mb: Mailbridge, graph, mailboxes: list, mode: str = "tickets",
                auth: str = "app", channel_keys: dict | None = None,
                app_keys: dict | None = None, **incoming) -> None:
    """A channel "support" reading `mailboxes` (addresses or tables) of the fake through the
    [[m365]] app "contoso"; `channel_keys` and `app_keys` add or override keys."""
    app = {"name": "contoso", "tenant_id": graph.tenant, "client_id": "app-1", "auth": auth,
           "authority_url": graph.url, "graph_url": graph.url, "ca_bundle": str(graph.ca_file),
           **(app_keys or {})}
    if auth == "app":
        app["client_secret"] = {"env": "MB_TEST_SECRET"}
    else:
        app["token_cache"] = {"file": str(mb.root / "cache.json")}
    channel = {"name": "support", "mode": mode, "main_email": "support@contoso.com",
               "incoming": {"type": "m365", "app": "contoso", "mailboxes": mailboxes,
                            **incoming}, **(channel_keys or {})}
    mb.write_config([channel], m365=[app])


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
