"""A throwaway PostgreSQL cluster for the tests: Debian's `postgresql` package, initdb into a
temp dir, listening on 127.0.0.1 and a free port only, password authentication for TCP.

initdb and pg_ctl refuse to run as root, and CI runs as root: there the cluster belongs to
the `postgres` user and its commands run as that user (`runuser`). Each test gets a database
of its own (`new_database`), made from an empty template in a few milliseconds."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from servers.dovecot import free_port

SUPERUSER, PASSWORD = "mbtest", "pg-test-password"  # a throwaway cluster's superuser
# Tests need no durability: a cluster that is thrown away afterwards skips every fsync.
FAST = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError("PostgreSQL is not installed (Debian package postgresql)")
    return found[-1]


class Postgres:
    START_TIMEOUT = 30.0

    def __init__(self, settings: dict[str, str] | None = None) -> None:
        """`settings`: server settings instead of FAST (a benchmark measures a server as
        it is deployed: `{}` keeps PostgreSQL's durable defaults)."""
        self.initdb, self.pg_ctl = _bin("initdb"), _bin("pg_ctl")
        self.settings = FAST if settings is None else settings
        self.root = Path(tempfile.mkdtemp(prefix="mb-postgres-"))
        self.root.chmod(0o755)
        self.data = self.root / "data"
        self.user: str | None = None
        if os.geteuid() == 0:
            self.user = "postgres"
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self.port = 0

    def _run(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
        cmd = list(args)
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              cwd=self.root)

    def start(self) -> None:
        pwfile = self.root / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(pwfile, entry.pw_uid, entry.pw_gid)
        done = self._run(self.initdb, "-D", str(self.data), "-U", SUPERUSER, "--pwfile",
                         str(pwfile), "-A", "scram-sha-256", "--auth-local=trust",
                         "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
        pwfile.unlink()
        if done.returncode:
            raise RuntimeError(f"initdb failed: {done.stderr.strip()[-500:]}")
        for _attempt in range(5):
            self.port = free_port()
            settings = {"listen_addresses": "127.0.0.1", "port": str(self.port),
                        "unix_socket_directories": str(self.root), "max_connections": "200",
                        **self.settings}
            options = " ".join(f"-c {name}={value}" for name, value in settings.items())
            done = self._run(self.pg_ctl, "-D", str(self.data), "-l",
                             str(self.root / "server.log"), "-o", options, "-w", "-t",
                             str(int(self.START_TIMEOUT)), "start")
            if done.returncode == 0:
                return
        raise RuntimeError(f"PostgreSQL did not start: {done.stderr.strip()[-500:]} "
                           f"{self.log_tail()}")

    def log_tail(self) -> str:
        log = self.root / "server.log"
        return log.read_text(errors="replace")[-2000:] if log.exists() else ""

    def url(self, database: str = "postgres", password: bool = False) -> str:
        secret = f":{PASSWORD}" if password else ""
        return f"postgresql://{SUPERUSER}{secret}@127.0.0.1:{self.port}/{database}"

    def sql(self, statement: str, database: str = "postgres") -> list[tuple]:
        import psycopg

        with psycopg.connect(self.url(database, password=True), autocommit=True,
                             connect_timeout=10) as conn:
            cur = conn.execute(statement)
            return cur.fetchall() if cur.description else []

    def new_database(self) -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        self.sql(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return name

    def drop_database(self, name: str) -> None:
        with contextlib.suppress(Exception):
            self.sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        if self.port:
            self._run(self.pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "-t", "30",
                      "stop")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (self.data / "postmaster.pid").exists():
            time.sleep(0.05)
        shutil.rmtree(self.root, ignore_errors=True)
