"""Every test runs in its own home: config, data and keyring folders live in tmp_path, so no
test reads the developer's real config or secrets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import tomli_w
from typer.testing import CliRunner

from mailbridge import redact
from mailbridge.cli.app import app
from mailbridge.connectors.drop import deliver, make_spool

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
CORPUS = REPO.parent / "shared" / "corpus"
SAMPLES = REPO / "mailbridge" / "samples"
TEST_KEYRING = "servers.keyring_backend.TmpKeyring"
CORPUS_LEFT_OUT = pytest.StashKey[int]()


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.delenv("MAILBRIDGE_CONFIG", raising=False)
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    # secrets registered for masking by an earlier test are not this test's
    monkeypatch.setattr(redact, "_SECRETS", set())
    # The tests' own keyring (tests/servers/keyring_backend.py) stands in for the OS one; it
    # writes under XDG_DATA_HOME. PYTHONPATH lets a mailbridge started as a subprocess load it.
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", TEST_KEYRING)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])))
    import keyring.core

    keyring.core._keyring_backend = None  # re-read the backend from the environment
    return home


PG_PASSWORD_ENV = "MB_TEST_PGPASSWORD"


# SQL for the raw bytes of the message `m` (store/messages.raw_of).
RAW = "coalesce((SELECT r.raw FROM message_raws r WHERE r.message = m.id), m.raw)"


class Mailbridge:
    """Runs the CLI in-process with a config in tmp_path; returns Click results. The store is
    a SQLite file in tmp_path, or (`store_url`) a PostgreSQL schema of the test cluster."""

    def __init__(self, root: Path, store_url: str | None = None) -> None:
        self.root = root
        self.config = root / "config.toml"
        self.store = root / "store" / "mailbridge.db"
        self.store_url = store_url
        self.runner = CliRunner()

    @property
    def backend(self) -> str:
        return "postgresql" if self.store_url else "sqlite"

    def __call__(self, *args: str, input: bytes | str | None = None, env=None):
        return self.runner.invoke(app, ["--config", str(self.config), *args], input=input,
                                  env=env, catch_exceptions=False)

    def store_table(self) -> dict:
        """The config's [store] table."""
        if self.store_url:
            return {"url": self.store_url, "password": {"env": PG_PASSWORD_ENV}}
        return {"path": str(self.store)}

    def settings(self):
        from mailbridge.config.model import StoreSettings

        if self.store_url:
            return StoreSettings(self.store_url, {"env": PG_PASSWORD_ENV})
        return StoreSettings.sqlite(self.store)

    def open(self):
        """The store, open for writing (created and migrated), on the fixture's backend."""
        from mailbridge.store.backends import backend

        return backend(self.settings()).connect()

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Rows of a read-only query on the store, whichever backend it is."""
        from mailbridge.store.backends import connection

        with connection(self.settings(), readonly=True) as db:
            return [tuple(row) for row in db.execute(sql, params).fetchall()]

    def value(self, sql: str, params: tuple = ()):
        return self.query(sql, params)[0][0]

    def raws(self) -> dict[int, bytes]:
        """Every stored message's raw bytes by id, wherever the store keeps them (a large
        one's in `message_raws`)."""
        return {i: bytes(raw) for i, raw in self.query(f"SELECT m.id, {RAW} FROM messages m")}

    def write(self, sql: str, params: tuple = ()) -> None:
        """Change the store behind mailbridge's back (what a crash would leave)."""
        from mailbridge.store.backends import connection

        with connection(self.settings()) as db:
            db.execute(sql, params)

    def dump(self) -> bytes:
        """Every value of every table, for checks that something is nowhere in the store."""
        from mailbridge.store.backends import connection

        parts = []
        with connection(self.settings(), readonly=True) as db:
            for table in sorted(db.tables()):
                for row in db.execute(f"SELECT * FROM {table}"):
                    parts += [v if isinstance(v, bytes) else str(v).encode() for v in row]
        return b"\n".join(parts)

    def write_config(self, channels: list[dict], **top) -> None:
        data = {"store": self.store_table(), "channel": channels, **top}
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


@pytest.fixture(params=["sqlite", "postgresql"])
def store_backend(request) -> str:
    """Every test that uses the store runs on each backend (tests marked `sqlite_only` test
    what only a file has, and run on SQLite alone)."""
    return request.param


@pytest.fixture
def mb(tmp_path: Path, store_backend: str, request) -> Mailbridge:
    url = request.getfixturevalue("pg_url") if store_backend == "postgresql" else None
    return Mailbridge(tmp_path, url)


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


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The real-world mail in ../shared/corpus. Only the project's own checkouts have it
    beside them: elsewhere the tests that read it are left out (pytest_collection_modifyitems),
    except in CI (CI=true), where it is required."""
    if not CORPUS.is_dir():
        pytest.fail(f"the shared mail corpus is required in CI (CI=true); not found at {CORPUS}")
    return CORPUS


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # `sqlite_only` tests (what only a file has) run on SQLite alone
    items[:] = [item for item in items
                if not (item.get_closest_marker("sqlite_only") and
                        getattr(item, "callspec", None) and
                        item.callspec.params.get("store_backend") == "postgresql")]
    if CORPUS.is_dir() or os.environ.get("CI") == "true":
        return
    reading = [item for item in items if "corpus" in getattr(item, "fixturenames", ())]
    if reading:
        config.hook.pytest_deselected(items=reading)
        items[:] = [item for item in items if item not in reading]
        config.stash[CORPUS_LEFT_OUT] = len(reading)


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    """One line for every test left out for want of the corpus, not one per test."""
    left_out = config.stash.get(CORPUS_LEFT_OUT, 0)
    if left_out:
        terminalreporter.write_line(
            f"no mail corpus at {CORPUS}: its {left_out} tests were not run (the project's "
            f"checkouts have it beside the clone; CI=true requires it)")


needs_corpus = pytest.mark.usefixtures("corpus")


def sqlite_store(path: Path, readonly: bool = False):
    """An open SQLite store at `path` (created and migrated unless `readonly`)."""
    from mailbridge.config.model import StoreSettings
    from mailbridge.store.backends import backend

    return backend(StoreSettings.sqlite(path)).connect(readonly=readonly)


def schema_status(db) -> tuple[int, int]:
    """(applied, pending) migration counts."""
    from mailbridge.store import migrations

    return len(migrations.applied(db)), len(migrations.pending(db))


def _started(what: str, start):
    """A test server started by `start()`; one that cannot start skips locally and fails in
    CI (MAILBRIDGE_REQUIRE_SERVERS=1)."""
    try:
        return start()
    except Exception as exc:  # noqa: BLE001 - any failure to start is reported the same way
        if _servers_required():
            pytest.fail(f"{what} is required (MAILBRIDGE_REQUIRE_SERVERS=1): {exc}")
        pytest.skip(f"no {what}: {exc}")


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
    [[m365]] app "contoso"; `channel_keys` and `app_keys` add or override keys (a delegated
    app keeps its token cache in cache.json, unless `app_keys` give a token_cache_key)."""
    app = {"name": "contoso", "tenant_id": graph.tenant, "client_id": "app-1", "auth": auth,
           "authority_url": graph.url, "graph_url": graph.url, "ca_bundle": str(graph.ca_file),
           **(app_keys or {})}
    if auth == "app":
        app["client_secret"] = {"env": "MB_TEST_SECRET"}
    elif "token_cache_key" not in app:
        app["token_cache"] = {"file": str(mb.root / "cache.json")}
    channel = {"name": "support", "mode": mode, "main_email": "support@contoso.com",
               "incoming": {"type": "m365", "app": "contoso", "mailboxes": mailboxes,
                            **incoming}, **(channel_keys or {})}
    mb.write_config([channel], m365=[app])


@pytest.fixture
def smtp():
    """A real SMTP server (aiosmtpd) on 127.0.0.1 that records what it receives."""
    from servers.smtp import SmtpServer

    server = SmtpServer()
    yield server
    server.close()


@pytest.fixture(scope="session")
def postgres():
    """One throwaway PostgreSQL cluster for the session (tests/servers/postgres.py); missing,
    it skips locally and fails in CI."""
    from servers.postgres import Postgres

    def start() -> Postgres:
        server = Postgres()
        server.start()
        server.sql("CREATE DATABASE mailbridge_tests")
        return server

    server = _started("PostgreSQL", start)
    yield server
    server.close()


@pytest.fixture
def pg_url(postgres, monkeypatch: pytest.MonkeyPatch) -> str:
    """A store URL of its own for one test: a fresh schema of the test database (a schema is
    made in a millisecond, a database in a fifth of a second). The password comes from the
    environment through a secret reference, as a user would give it."""
    import uuid

    from servers.postgres import PASSWORD

    schema = f"t_{uuid.uuid4().hex[:12]}"
    postgres.sql(f"CREATE SCHEMA {schema}", "mailbridge_tests")
    monkeypatch.setenv(PG_PASSWORD_ENV, PASSWORD)
    yield postgres.url("mailbridge_tests") + f"?options=-csearch_path%3D{schema}"
    from mailbridge.store.backends import close_all

    close_all()
    postgres.sql(f"DROP SCHEMA {schema} CASCADE", "mailbridge_tests")


@pytest.fixture(scope="session")
def dovecot():
    """One real Dovecot for the session; a missing one skips locally and fails in CI."""
    from servers.dovecot import Dovecot

    def start() -> Dovecot:
        server = Dovecot()
        server.start()
        return server

    server = _started("Dovecot", start)
    yield server
    server.close()


@pytest.fixture
def imap_user(dovecot):
    return dovecot.add_user()
