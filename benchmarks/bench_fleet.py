"""Several `mailbridge run` processes sharing one PostgreSQL store: M IMAP mailboxes of a real
Dovecot, each a channel polled every INTERVAL, served by 1, 2 and 3 processes in turn, while
mail keeps arriving.

What it measures for each number of processes (prints figures; asserts nothing):

* arrival-to-ticket latency, p50 / p95 / max. Arrival: the moment the message file is renamed
  into the mailbox's Maildir `new/` (as a delivery agent does; Dovecot shows it to the next
  SELECT). Ticket: the commit of the transaction that stored the message and filed it into a
  ticket, read from PostgreSQL (`track_commit_timestamp = on`, the commit time of its
  `ticket_messages` row), on the same host's clock. Each is checked against the row's
  `stored_at` (whole seconds, taken just before that commit); the count of rows whose commit
  is not within 5 s after it is printed. Mail arrives at a steady rate (`--rate`), each
  message to a mailbox picked at random, all of them realistic (bench_imap's generator).
* CPU per poll: the user+sys CPU of the `run` processes (and of parsing helpers they reaped)
  over the measured window, divided by the channel syncs they did in it (rows added to `runs`);
  everything a process does counts, the idle claim ticks, heartbeat and outbox jobs included.
  The servers' CPU (PostgreSQL, Dovecot) per poll likewise.
* connections held: sampled every second over the window - sessions on the database
  (`pg_stat_activity`, application_name 'mailbridge') and TCP connections from the `run`
  processes to Dovecot's IMAP port (their sockets, found through /proc), mean and maximum.
* who did the work: syncs per process (lease claims in `lease_events`), each channel's median
  time between two syncs ("period"), and that every message was stored once.
* what the database did: statements a poll and the server's time for them, the costliest
  first (pg_stat_statements, reset when the window begins).

The processes start together on an empty store, so every channel is due at once: the window
begins after each channel's first sync, and the channels stay roughly in step afterwards
(each is due INTERVAL after its last sync, with APScheduler's jitter), as after a restart of a
real fleet. Each process is a host of its own (`unshare --uts`, its own host name) when that
is possible (root); otherwise plain processes of one host, which lease by host:pid alike.

Run (as root, with Debian's dovecot-imapd and postgresql installed; tests/servers/ drives them):

    python benchmarks/bench_fleet.py [--mailboxes 200] [--interval 60] [--duration 300]
        [--rate 2] [--hosts 1,2,3] [--quick] [--python PY]

--quick: 50 mailboxes every 20 s for 60 s (a smoke run; its figures are not the default's).
Every wait is bounded; the servers and processes are stopped however it ends.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import tomli_w

REPO = Path(__file__).resolve().parents[1]
PASSWORD_ENV, PG_PASSWORD_ENV = "MB_BENCH_PW", "MB_BENCH_PGPASSWORD"
IMAP_PASSWORD = "fleet-bench-password"  # one for every throwaway mailbox
SAMPLE_SECONDS = 1.0
STOP_SECONDS = 60.0  # a process stopping commits what it fetched; then it is killed
CLOCK_SLACK = 5.0  # a commit follows its row's stored_at within this, or is reported


def can_unshare() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "--uts", "true"], capture_output=True,
                          timeout=10).returncode == 0


def wait_for(check, timeout: float, step: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(step)
    return check()


def sockets_to(pids: list[int], port: int) -> int:
    """ESTABLISHED TCP connections of these processes to 127.0.0.1:`port`: their socket
    inodes (/proc/PID/fd) looked up in /proc/net/tcp."""
    inodes: set[str] = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
    count = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            # remote address as hex ip:port, state 01 = ESTABLISHED, inode in field 10
            if fields[3] == "01" and int(fields[2].split(":")[1], 16) == port \
                    and fields[9] in inodes:
                count += 1
    return count


class Mail:
    """Delivers generated messages into the mailboxes' Maildirs, as a delivery agent does
    (written in tmp/, renamed into new/), and records when each arrived."""

    def __init__(self, dovecot, users: list, start: int, seed: int) -> None:
        from bench_imap import Corpus, make_maildir

        self.dovecot = dovecot
        self.new_dirs = [make_maildir(dovecot, u.username) for u in users]
        self.corpus = Corpus([], [], [], [])
        self.rng = random.Random(seed)
        self.next = start
        self.arrived: dict[str, float] = {}  # Message-ID -> arrival (time.time())

    def deliver_one(self) -> None:
        from bench_imap import generate

        i, self.next = self.next, self.next + 1
        raw = generate(self.rng, i, self.corpus, 1_760_000_000)
        new = self.rng.choice(self.new_dirs)
        name = f"{int(time.time())}.M{i}P{os.getpid()}.fleet,S={len(raw)}"
        tmp = new.parent / "tmp" / name
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.fchown(fd, self.dovecot.mail_uid, self.dovecot.mail_gid)
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        os.rename(tmp, new / name)
        self.arrived[self.corpus.ids[-1]] = time.time()

    def keep_coming(self, rate: float, seconds: float, stop: threading.Event) -> None:
        """`rate` messages a second for `seconds`, on a steady clock (never bursts to catch
        up more than one message)."""
        began = time.monotonic()
        for k in range(int(rate * seconds)):
            if stop.wait(max(0.0, began + k / rate - time.monotonic())):
                return
            self.deliver_one()


class Fleet:
    """The `run` processes, each a host of its own where `unshare --uts` works."""

    def __init__(self, python: str, config: Path, logs: Path, env: dict[str, str]) -> None:
        self.python, self.config, self.logs, self.env = python, config, logs, env
        self.procs: dict[str, subprocess.Popen] = {}
        self.hosts_of_their_own = can_unshare()

    def start(self, host: str) -> None:
        argv = [self.python, "-m", "mailbridge", "--config", str(self.config), "run"]
        if self.hosts_of_their_own:  # unshare execs sh, which execs python: one pid
            argv = ["unshare", "--uts", "sh", "-c",
                    f"hostname {host} && exec {' '.join(argv)}"]
        with open(self.logs / f"{host}.log", "ab") as log:
            self.procs[host] = subprocess.Popen(argv, env=self.env, stdout=subprocess.DEVNULL,
                                                stderr=log)

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs.values() if p.poll() is None]

    def cpu(self) -> float:
        from bench_imap import tree_cpu

        return sum(tree_cpu(p.pid) for p in self.procs.values())

    def stop(self) -> dict[str, int | None]:
        """SIGTERM, then SIGKILL for a process still there after STOP_SECONDS (none are left
        running either way; calling it again is harmless)."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes: dict[str, int | None] = {}
        for host, proc in self.procs.items():
            try:
                codes[host] = proc.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                proc.kill()
                codes[host] = proc.wait(timeout=10)
        return codes

    def problems(self) -> list[str]:
        """Warnings, errors and tracebacks the processes logged, alike lines (all but their
        digits) counted together."""
        found: Counter[str] = Counter()
        for host in self.procs:
            for line in (self.logs / f"{host}.log").read_text(errors="replace").splitlines():
                if re.search(r"WARNING|ERROR|Traceback|error:", line):
                    found[re.sub(r"\d+", "#", line)] += 1
        return [f"{n} x {line}" for line, n in found.most_common()]


@dataclass
class Figures:
    hosts: int
    own_hosts: bool
    window: float = 0.0
    syncs: int = 0
    per_host: dict[str, int] = field(default_factory=dict)
    cpu: float = 0.0
    pg_cpu: float = 0.0
    dovecot_cpu: float = 0.0
    latencies: list[float] = field(default_factory=list)
    periods: list[float] = field(default_factory=list)  # between two syncs of a channel
    statements: list[tuple] = field(default_factory=list)  # (calls, total ms, query)
    arrived: int = 0
    stored: int = 0
    duplicates: int = 0
    clock_outliers: int = 0
    db_conns: list[int] = field(default_factory=list)
    pg_sockets: list[int] = field(default_factory=list)
    imap_conns: list[int] = field(default_factory=list)
    exit_codes: dict[str, int | None] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def write_config(path: Path, users: list, port: int, store_url: str, interval: int) -> None:
    path.write_text(tomli_w.dumps({
        "store": {"url": store_url, "password": {"env": PG_PASSWORD_ENV}},
        "channel": [{"name": f"box{i:03d}", "schedule": f"{interval}s",
                     "main_email": f"support{i}@example.com",
                     "incoming": {"type": "imap", "host": "127.0.0.1", "port": port,
                                  "security": "none", "username": user.username,
                                  "password": {"env": PASSWORD_ENV}}}
                    for i, user in enumerate(users)],
    }))


def measure(hosts: int, args: argparse.Namespace, dovecot, postgres, work: Path,
            first_message: int) -> Figures:
    from bench_imap import tree_cpu
    from servers.postgres import PASSWORD

    from mailbridge.config.model import StoreSettings
    from mailbridge.store.backends import close_all, connection

    root = work / f"hosts-{hosts}"
    root.mkdir()
    users = [dovecot.add_user(password=IMAP_PASSWORD) for _ in range(args.mailboxes)]
    database = postgres.new_database()
    config = root / "config.toml"
    write_config(config, users, dovecot.port, postgres.url(database), args.interval)
    env = {**os.environ, PASSWORD_ENV: IMAP_PASSWORD, PG_PASSWORD_ENV: PASSWORD}
    env.pop("MAILBRIDGE_CONFIG", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ[PG_PASSWORD_ENV] = PASSWORD
    with connection(StoreSettings(postgres.url(database), {"env": PG_PASSWORD_ENV})):
        pass  # made and migrated before the processes start, so none of them waits on it
    close_all()

    # one session of the benchmark's own for its questions (a connection each would add a
    # server process each to the PostgreSQL CPU measured)
    watcher = psycopg.connect(postgres.url(database, password=True), autocommit=True,
                              connect_timeout=10)

    def value(sql: str) -> Any:
        return watcher.execute(sql).fetchone()[0]

    mail = Mail(dovecot, users, first_message, seed=hosts)
    fleet = Fleet(args.python, config, root, env)
    figures = Figures(hosts, fleet.hosts_of_their_own)
    stop = threading.Event()
    try:
        for k in range(hosts):
            fleet.start(f"host-{chr(ord('a') + k)}")
        print(f"{hosts} process(es): waiting for every channel's first sync ...", flush=True)
        if not wait_for(lambda: value("SELECT count(DISTINCT channel) FROM runs WHERE "
                                      "finished_at IS NOT NULL") >= args.mailboxes,
                        60 + args.mailboxes):
            print("  not every channel was synced in time; measuring anyway", flush=True)
        postmaster = int((postgres.data / "postmaster.pid").read_text().split()[0])
        postgres.sql("SELECT pg_stat_statements_reset()")
        runs0 = value("SELECT coalesce(max(id), 0) FROM runs")
        events0 = value("SELECT coalesce(max(id), 0) FROM lease_events")
        cpu0, pg0, dov0 = fleet.cpu(), tree_cpu(postmaster), tree_cpu(dovecot.proc.pid)
        began = time.monotonic()
        arriving = threading.Thread(target=mail.keep_coming,
                                    args=(args.rate, args.duration, stop), daemon=True)
        arriving.start()
        print(f"  measuring for {args.duration:.0f} s, {args.rate:g} messages a second ...",
              flush=True)
        while arriving.is_alive() and time.monotonic() - began < args.duration + 30:
            figures.db_conns.append(value("SELECT count(*) FROM pg_stat_activity WHERE "
                                          "application_name = 'mailbridge'"))
            pids = fleet.pids()
            figures.pg_sockets.append(sockets_to(pids, postgres.port))
            figures.imap_conns.append(sockets_to(pids, dovecot.port))
            arriving.join(SAMPLE_SECONDS)
        stop.set()
        arriving.join(10)
        figures.window = time.monotonic() - began
        figures.cpu = fleet.cpu() - cpu0
        figures.pg_cpu = tree_cpu(postmaster) - pg0
        figures.dovecot_cpu = tree_cpu(dovecot.proc.pid) - dov0
        figures.syncs = value(f"SELECT count(*) FROM runs WHERE id > {runs0}")
        figures.statements = postgres.sql(
            "SELECT calls, total_exec_time, query FROM pg_stat_statements WHERE dbid = "
            f"(SELECT oid FROM pg_database WHERE datname = '{database}') AND query NOT LIKE "
            "'%pg_stat%' ORDER BY total_exec_time DESC")
        claims = watcher.execute(f"SELECT channel, owner, at FROM lease_events WHERE id > "
                                 f"{events0} AND event = 'claimed' ORDER BY id").fetchall()
        figures.per_host = dict(sorted(Counter(o.split(":")[0] for _c, o, _a in claims).items()))
        last: dict[str, float] = {}
        for channel, _owner, at in claims:
            if channel in last:
                figures.periods.append(at - last[channel])
            last[channel] = at
        figures.arrived = len(mail.arrived)
        print(f"  {figures.arrived} messages arrived; waiting for the last to be filed ...",
              flush=True)
        wait_for(lambda: value("SELECT count(*) FROM ticket_messages") >= figures.arrived,
                 2 * args.interval + 60, step=1.0)
        figures.exit_codes = fleet.stop()
        filed = watcher.execute(
            "SELECT m.message_id, extract(epoch FROM pg_xact_commit_timestamp(tm.xmin))::float8,"
            " m.stored_at FROM messages m JOIN ticket_messages tm ON tm.message = m.id"
        ).fetchall()
        figures.stored = value("SELECT count(*) FROM messages")
        figures.duplicates = figures.stored - value("SELECT count(DISTINCT message_id) FROM "
                                                    "messages")
    finally:
        stop.set()
        fleet.stop()
        watcher.close()
    figures.problems = fleet.problems()
    for message_id, committed, stored_at in filed:
        arrived = mail.arrived.get((message_id or "").strip("<>"))
        if arrived is None:
            continue
        figures.latencies.append(committed - arrived)
        if not 0 <= committed - datetime.fromisoformat(stored_at).timestamp() < CLOCK_SLACK:
            figures.clock_outliers += 1
    postgres.drop_database(database)
    return figures


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else 0.0


def table(rows: list[Figures]) -> str:
    head = (f"{'procs':>5} {'syncs':>6} {'/min':>6} {'period':>6} {'msgs':>5} {'p50 s':>6} "
            f"{'p95 s':>6} "
            f"{'max s':>6} {'CPU/poll':>9} {'PG/poll':>8} {'Dov/poll':>8} {'proc CPU%':>9} "
            f"{'DB conns':>9} {'IMAP conns':>10}  syncs per process")
    lines = [head, "-" * len(head)]
    for f in rows:
        polls = max(f.syncs, 1)
        lines.append(
            f"{f.hosts:>5} {f.syncs:>6} {60 * f.syncs / f.window:>6.1f} "
            f"{statistics.median(f.periods or [0]):>6.1f} {f.arrived:>5} "
            f"{percentile(f.latencies, 50):>6.1f} {percentile(f.latencies, 95):>6.1f} "
            f"{max(f.latencies, default=0):>6.1f} {1000 * f.cpu / polls:>6.1f} ms "
            f"{1000 * f.pg_cpu / polls:>5.1f} ms {1000 * f.dovecot_cpu / polls:>5.1f} ms "
            f"{100 * f.cpu / f.window / f.hosts:>8.1f}% "
            f"{statistics.mean(f.db_conns or [0]):>4.1f}/{max(f.db_conns, default=0):<4} "
            f"{statistics.mean(f.imap_conns or [0]):>5.2f}/{max(f.imap_conns, default=0):<4}  "
            + " ".join(f"{h} {n}" for h, n in f.per_host.items()))
    return "\n".join(lines)


def checks(rows: list[Figures]) -> list[str]:
    notes = []
    for f in rows:
        lost = f.arrived - len(f.latencies)
        notes.append(
            f"{f.hosts} process(es): {f.arrived} arrived, {len(f.latencies)} filed in tickets "
            f"({lost} not within the wait), {f.duplicates} stored twice; commit not within "
            f"{CLOCK_SLACK:.0f} s after stored_at: {f.clock_outliers}; PostgreSQL sockets of "
            f"the processes mean {statistics.mean(f.pg_sockets or [0]):.1f}, max "
            f"{max(f.pg_sockets, default=0)}; exit codes "
            + ", ".join(f"{h} {c}" for h, c in f.exit_codes.items())
            + ("" if f.own_hosts else "; one host (no `unshare --uts`): processes of one "
                                      "host name"))
        polls = max(f.syncs, 1)
        calls = sum(c for c, _t, _q in f.statements)
        busy = sum(t for _c, t, _q in f.statements)
        notes.append(f"  database: {calls / polls:.0f} statements a poll, {busy / polls:.1f} ms "
                     "of the server's time a poll; the most time:")
        notes += [f"    {c / polls:7.1f}/poll {t / polls:6.2f} ms/poll  {' '.join(q.split())[:90]}"
                  for c, t, q in f.statements[:6]]
        notes += [f"  {line}" for line in f.problems[:10]]
        if len(f.problems) > 10:
            notes.append(f"  ... {len(f.problems) - 10} more lines like these")
    return notes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mailboxes", type=int, default=None, help="IMAP channels (200)")
    parser.add_argument("--interval", type=int, default=None,
                        help="each channel's schedule, seconds (60)")
    parser.add_argument("--duration", type=float, default=None,
                        help="measured window per configuration, seconds (300)")
    parser.add_argument("--rate", type=float, default=2.0,
                        help="messages arriving per second, over all mailboxes (2)")
    parser.add_argument("--hosts", default="1,2,3",
                        help="numbers of run processes to measure in turn (1,2,3)")
    parser.add_argument("--quick", action="store_true",
                        help="50 mailboxes every 20 s, 60 s a configuration")
    parser.add_argument("--python", default=sys.executable,
                        help="interpreter that runs mailbridge (default: this one)")
    args = parser.parse_args()
    quick = {"mailboxes": 50, "interval": 20, "duration": 60.0}
    default = {"mailboxes": 200, "interval": 60, "duration": 300.0}
    for name, value in (quick if args.quick else default).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    try:
        counts = [int(h) for h in args.hosts.split(",")]
    except ValueError:
        parser.error("--hosts: numbers separated by commas, e.g. 1,2,3")
    if not all(1 <= h <= 26 for h in counts) or args.mailboxes < 1 or args.interval < 1 \
            or args.duration <= 0 or args.rate <= 0:
        parser.error("--hosts 1-26 each; --mailboxes, --interval, --duration, --rate > 0")

    sys.path.insert(0, str(REPO / "tests"))
    sys.path.insert(0, str(REPO / "benchmarks"))
    from servers.dovecot import Dovecot
    from servers.postgres import Postgres

    dovecot = Dovecot()
    # PostgreSQL as deployed (durable defaults), plus commit times for the latency and the
    # statements the processes run
    postgres = Postgres({"track_commit_timestamp": "on",
                         "shared_preload_libraries": "pg_stat_statements"})
    work = Path(tempfile.mkdtemp(prefix="mb-bench-fleet-"))
    rows: list[Figures] = []
    try:
        dovecot.start()
        postgres.start()
        postgres.sql("CREATE EXTENSION pg_stat_statements")
        print(f"{args.mailboxes} mailboxes polled every {args.interval} s; mail at "
              f"{args.rate:g}/s for {args.duration:.0f} s per configuration; "
              f"{os.cpu_count()} CPUs", flush=True)
        for k, hosts in enumerate(counts):  # Message-IDs of each configuration its own
            rows.append(measure(hosts, args, dovecot, postgres, work, 1_000_000 * k))
        print()
        print("=" * 100)
        print(table(rows))
        print("\n".join(checks(rows)))
        print("=" * 100)
        return 0
    finally:
        postgres.close()
        dovecot.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
