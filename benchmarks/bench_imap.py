"""IMAP sync throughput of mailbridge against a real Dovecot, into a SQLite and a PostgreSQL
store, next to a plain reference loop and mbsync.

What it measures (prints figures; asserts nothing):

* N generated messages with a realistic mix (plain text, multipart/alternative text+HTML,
  ~15 % with 5-200 KB base64 attachments, utf-8 / iso-8859-1 / koi8-r / windows-1252 /
  us-ascii bodies in 7bit, 8bit, quoted-printable and base64, ~half of them replies with
  In-Reply-To/References), reproducible (random.Random(42)), are written straight into the
  Maildir INBOX of fresh Dovecot users (one a store, one for the reference) as unread mail
  (APPEND one by one is far too slow).
* mailbridge, for each store (`--store sqlite|postgresql|both`): `python -m mailbridge
  --config C sync --quiet` in a subprocess into a fresh store - wall time, the child's
  user+sys CPU, its peak RSS, and the CPU the servers spent meanwhile (Dovecot; PostgreSQL,
  whose share of the work SQLite does inside the child); msg/s and MB/s (bytes as served over
  IMAP, CRLF). Then, once the sync's writes are on disk, the same command nine more times with
  nothing new (the cron "poll"): median wall time, interpreter start included. PostgreSQL is a
  throwaway cluster (tests/servers/postgres.py) with its durable defaults (fsync and
  synchronous_commit on), on the same host; SQLite is in WAL mode with synchronous=NORMAL.
  `--rounds K` repeats the timed syncs, the stores in turn (A B, B A, ...), each time into a
  fresh store with the mailbox marked unread again; the PostgreSQL/SQLite msg/s ratio is
  taken round by round, so a drift of the machine's speed cancels out.
* reference: a plain imapclient + email + sqlite-utils loop in a subprocess on its own user
  (SEARCH UNSEEN, FETCH BODY.PEEK[] in batches of 200, parse, insert one transaction per
  batch, STORE +FLAGS.SILENT \\Seen) - the same figures (`--no-reference` skips it).
* mbsync (Debian's isync; installed here with apt-get when missing and this runs as root):
  `mbsync` pulling INBOX into a Maildir on its own, identically filled user - a tool that
  only copies bytes, the speed of the wire - the same figures (`--no-mbsync` skips it). It
  runs in every round, after mailbridge's syncs, into a fresh Maildir (it only pulls, so the
  server's mail stays unread): its msg/s swings from run to run as much as mailbridge's,
  with the disk it writes every message to. The mailbridge/mbsync msg/s ratio is taken round
  by round; CPU is in ms per message for every line.
* --latency-ms MS: every IMAP client here (mailbridge, the reference loop, mbsync) reaches
  Dovecot through a TCP proxy on 127.0.0.1 that holds each chunk MS milliseconds in each
  direction, as a mail server across a network would (5: 10 ms round trips); bandwidth is
  not limited. Round trips a client waits for then show in its msg/s.
* --db-apart: the database server on a core of its own and everything else (this script and
  its threads, the Dovecot it drives, mailbridge and the other clients) on the remaining
  cores, for every store: a shared store's server is a machine apart, and on a 2-core host a
  PostgreSQL sharing the cores with mailbridge and Dovecot competes with both. SQLite's run
  gets the same cores for mailbridge, its engine inside the mailbridge process; the
  PostgreSQL/SQLite ratio is then about that of one mailbridge host against a database
  server of its own. Only the CPU is apart: the server is still reached over loopback (no
  network round trip; --latency-ms delays IMAP only) and shares the disk.
* --profile: additionally runs a mailbridge sync under cProfile for each store on another,
  identically filled user and prints the top 25 entries by cumulative time, the top 25 of
  mailbridge's own functions by cumulative time, and the top 15 by own time (profiles kept in
  $TMPDIR); for PostgreSQL also the statements it ran (pg_stat_statements, loaded into the
  cluster for this): calls per message and the server's time per statement.

Run (as root, with Debian's dovecot-imapd and postgresql installed; tests/servers/ drives them):

    python benchmarks/bench_imap.py [N] [--quick] [--store sqlite|postgresql|both]
        [--rounds K] [--profile] [--no-reference] [--no-mbsync] [--timeout SECONDS]
        [--python PY] [--latency-ms MS] [--db-apart]

N defaults to 20000; --quick means 2000. Every wait is bounded (--timeout per sync, 900 s).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import datetime as dt
import email
import email.policy
import html
import json
import os
import pstats
import quopri
import random
import resource
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from dataclasses import dataclass, field
from email.header import Header
from email.utils import format_datetime, formataddr
from pathlib import Path
from typing import Any

import tomli_w
from imapclient import IMAPClient

REPO = Path(__file__).resolve().parents[1]
PASSWORD_ENV = "MB_BENCH_PW"
PG_PASSWORD_ENV = "MB_BENCH_PGPASSWORD"
TIME_BIN = "/usr/bin/time"
BATCH = 200
POLLS = 9  # this VM's timing noise is ±30 %: one poll says little
DOMAIN = "bench.example"
STORES = ("sqlite", "postgresql")
TARGET_RATIO = 0.8  # issue 18: PostgreSQL at least 0.8x SQLite's msg/s on one host

# ---------------------------------------------------------------------------------------------
# Message generation


def _words(text: str) -> list[str]:
    return text.split()


WORDS = {
    "us-ascii": _words("hello thanks order invoice delivery account password reset printer error "
                       "please could you check the status of my request again tomorrow urgent "
                       "issue refund shipping address update subscription cancel login page"),
    "utf-8": _words("привет спасибо заказ Grüße naïve café façade résumé déjà vu 注文 配送 "
                    "ありがとう ✓ 🚀 😊 — “quoted” € price order status update please help"),
    "iso-8859-1": _words("Grüße Straße schön Bestellung Rechnung Lieferung bitte danke für Ihre "
                         "Anfrage où est ma commande déjà reçu años señor información envío "
                         "café garçon über Größe"),
    "koi8-r": _words("здравствуйте спасибо заказ счёт доставка оплата пожалуйста проверьте "
                     "статус моей заявки срочно ошибка возврат адрес подписка вход пароль "
                     "принтер не работает"),
    "windows-1252": _words("“Smart quotes” – en dash — em dash € euro ‘single’ … ellipsis Grüße "
                           "naïve café œuvre Šárka Žofie • bullet ™ trademark order invoice"),
}
CHARSETS = list(WORDS)
CHARSET_WEIGHTS = [30, 30, 15, 15, 10]
PEOPLE = {
    "us-ascii": ["John Smith", "Mary Johnson", "Robert Brown", "Linda Davis", "Acme Corp"],
    "utf-8": ["Zoë Müller", "Łukasz Żółć", "山田 太郎", "Ольга Смирнова", "Ahmet Yılmaz"],
    "iso-8859-1": ["José García", "François Lefèvre", "Jürgen Weiß", "Inês Conceição"],
    "koi8-r": ["Иван Петров", "Мария Иванова", "Сергей Кузнецов", "Анна Попова"],
    "windows-1252": ["Renée Dupont", "Søren Kierkegård", "Œdipe Bœuf", "Šarlota Žáková"],
}
ATTACHMENTS = [("application/pdf", "pdf"), ("image/png", "png"), ("image/jpeg", "jpg"),
               ("application/zip", "zip"), ("text/csv", "csv"),
               ("application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                "docx")]


def _sentence(rng: random.Random, charset: str) -> str:
    words = rng.choices(WORDS[charset], k=rng.randint(5, 16))
    return " ".join(words).capitalize() + rng.choice([".", ".", ".", "?", "!"])


def _paragraphs(rng: random.Random, charset: str) -> list[str]:
    return [" ".join(_sentence(rng, charset) for _ in range(rng.randint(1, 6)))
            for _ in range(rng.randint(1, 12))]


def _encode_body(rng: random.Random, text: str, charset: str) -> tuple[str, bytes]:
    """(Content-Transfer-Encoding, encoded body with LF line ends)."""
    data = text.encode(charset)
    if charset == "us-ascii":
        return "7bit", data
    cte = rng.choice(["8bit", "quoted-printable", "quoted-printable", "base64"])
    if cte == "quoted-printable":
        return cte, quopri.encodestring(data)
    if cte == "base64":
        return cte, base64.encodebytes(data)
    return cte, data


def _header(value: str, charset: str) -> str:
    if value.isascii():
        return value
    return Header(value, charset if charset != "us-ascii" else "utf-8").encode(maxlinelen=76)


def _text_part(rng: random.Random, paragraphs: list[str], charset: str, quote: str) -> bytes:
    text = "\n\n".join(textwrap.fill(p, 72) for p in paragraphs)
    text += "\n\n-- \n" + rng.choice(PEOPLE[charset]) + "\n"
    if quote:
        text += "\n" + quote
    cte, body = _encode_body(rng, text, charset)
    return (f"Content-Type: text/plain; charset={charset}\n"
            f"Content-Transfer-Encoding: {cte}\n\n").encode() + body


def _html_part(rng: random.Random, paragraphs: list[str], charset: str) -> bytes:
    inner = "\n".join(f"<p style=\"margin:0 0 1em 0\">{html.escape(p, quote=False)}</p>"
                      for p in paragraphs)
    text = (f"<!DOCTYPE html>\n<html><head><meta charset=\"{charset}\"><style>body "
            "{font-family: Arial, sans-serif; font-size: 14px}</style></head>\n<body>\n"
            f"<div class=\"content\">\n{inner}\n</div>\n"
            f"<table><tr><td><b>{html.escape(rng.choice(PEOPLE[charset]))}</b></td></tr></table>"
            "\n</body></html>\n")
    # HTML lines can be long: never 8bit, so no line exceeds 998 octets
    cte = "7bit" if charset == "us-ascii" else rng.choice(["quoted-printable", "base64"])
    data = text.encode(charset)
    body = data if cte == "7bit" else (quopri.encodestring(data) if cte == "quoted-printable"
                                       else base64.encodebytes(data))
    return (f"Content-Type: text/html; charset={charset}\n"
            f"Content-Transfer-Encoding: {cte}\n\n").encode() + body


def _attachment(rng: random.Random, i: int) -> bytes:
    ctype, ext = rng.choice(ATTACHMENTS)
    size = int(5 * 1024 * (40 ** rng.random()))  # log-uniform 5-200 KB
    data = rng.randbytes(size)
    name = f"{rng.choice(['invoice', 'scan', 'photo', 'report', 'export'])}-{i}.{ext}"
    return (f"Content-Type: {ctype}; name=\"{name}\"\n"
            f"Content-Disposition: attachment; filename=\"{name}\"\n"
            "Content-Transfer-Encoding: base64\n\n").encode() + base64.encodebytes(data)


def _multipart(rng: random.Random, subtype: str, parts: list[bytes]) -> tuple[str, bytes]:
    boundary = f"=_b{rng.getrandbits(64):016x}"
    body = b"This is a multi-part message in MIME format.\n"
    for part in parts:
        body += f"\n--{boundary}\n".encode() + part.rstrip(b"\n") + b"\n"
    body += f"\n--{boundary}--\n".encode()
    return f"multipart/{subtype}; boundary=\"{boundary}\"", body


@dataclass
class Corpus:
    """What later messages need to refer to earlier ones (replies) and the running totals."""
    ids: list[str]
    subjects: list[str]
    refs: list[list[str]]
    charsets: list[str]
    count: int = 0
    file_bytes: int = 0  # LF, as stored in the maildir
    wire_bytes: int = 0  # CRLF, as Dovecot serves them (RFC822.SIZE)


def generate(rng: random.Random, i: int, corpus: Corpus, t0: int) -> bytes:
    parent = -1  # about half are replies, mostly to recent mail, in the language of the parent
    if corpus.ids and rng.random() < 0.5:
        parent = max(0, len(corpus.ids) - 1 - int(rng.expovariate(1 / 40)))
    charset = corpus.charsets[parent] if parent >= 0 else rng.choices(CHARSETS, CHARSET_WEIGHTS)[0]
    name = rng.choice(PEOPLE[charset])
    sender = f"customer{rng.randrange(2000)}@{rng.choice(['mail.ru', 'gmx.de', 'example.org'])}"
    msgid = f"{i}.{rng.getrandbits(48):012x}@{DOMAIN}"
    headers = [
        f"Return-Path: <{sender}>",
        f"Received: from mx{rng.randrange(9)}.{DOMAIN} (mx.{DOMAIN} [192.0.2.{rng.randrange(254)}])"
        f"\n\tby imap.{DOMAIN} with ESMTPS id {rng.getrandbits(40):010x}"
        f"\n\tfor <support@example.com>; {format_datetime_at(t0 + 60 * i)}",
        f"From: {formataddr((name, sender), charset=_cs(charset))}",
        "To: Support <support@example.com>",
        f"Date: {format_datetime_at(t0 + 60 * i - rng.randrange(300))}",
        f"Message-ID: <{msgid}>",
    ]
    quote = ""
    refs: list[str] = []
    if parent >= 0:
        refs = (corpus.refs[parent] + [corpus.ids[parent]])[-10:]
        subject = corpus.subjects[parent]
        subject = subject if subject.startswith("Re: ") else "Re: " + subject
        headers.append(f"In-Reply-To: <{corpus.ids[parent]}>")
        headers.append("References: " + "\n\t".join(f"<{r}>" for r in refs))
        quote = "".join(f"> {line}\n" for line in
                        textwrap.wrap(_sentence(rng, charset) * rng.randint(1, 4), 70))
    else:
        subject = _sentence(rng, charset)[:rng.randint(20, 70)].rstrip()
    headers.append(f"Subject: {_header(subject, charset)}")
    headers += ["MIME-Version: 1.0", f"X-Mailer: {rng.choice(['Outlook 16.0', 'Thunderbird'])}"]

    paragraphs = _paragraphs(rng, charset)
    kind = rng.random()
    text = _text_part(rng, paragraphs, charset, quote)
    if kind < 0.15:  # with attachments
        body_part = text
        if rng.random() < 0.5:
            html_part = _html_part(rng, paragraphs, charset)
            ctype, alt = _multipart(rng, "alternative", [text, html_part])
            body_part = f"Content-Type: {ctype}\n\n".encode() + alt
        atts = [_attachment(rng, i) for _ in range(1 if rng.random() < 0.8 else 2)]
        ctype, body = _multipart(rng, "mixed", [body_part, *atts])
        top = f"Content-Type: {ctype}\n\n".encode()
    elif kind < 0.55:  # multipart/alternative
        ctype, body = _multipart(rng, "alternative", [text, _html_part(rng, paragraphs, charset)])
        top = f"Content-Type: {ctype}\n\n".encode()
    else:  # plain text: its own part headers become the top-level ones
        top, body = text.split(b"\n\n", 1)
        top += b"\n\n"
    raw = "\n".join(headers).encode() + b"\n" + top + body
    corpus.ids.append(msgid)
    corpus.subjects.append(subject)
    corpus.refs.append(refs)
    corpus.charsets.append(charset)
    corpus.count += 1
    corpus.file_bytes += len(raw)
    corpus.wire_bytes += len(raw) + raw.count(b"\n")
    return raw


def _cs(charset: str) -> str:
    return "utf-8" if charset == "us-ascii" else charset


def format_datetime_at(ts: int) -> str:
    return format_datetime(dt.datetime.fromtimestamp(ts, dt.timezone(dt.timedelta(hours=3))))


# ---------------------------------------------------------------------------------------------
# Maildir filling


def make_maildir(dovecot, username: str) -> Path:
    maildir = dovecot.root / "home" / username / "Maildir"
    for sub in ("", "cur", "new", "tmp"):
        d = maildir / sub
        d.mkdir(mode=0o700, exist_ok=True)
        os.chown(d, dovecot.mail_uid, dovecot.mail_gid)
    return maildir / "new"


def deliver(new: Path, raw: bytes, i: int, t0: int, uid: int, gid: int) -> None:
    # Dovecot orders new mail by the time in the name; S= and W= spare it a stat and a scan.
    vsize = len(raw) + raw.count(b"\n")
    name = f"{t0 + i}.M{i % 1000000}P{os.getpid()}Q{i}.bench,S={len(raw)},W={vsize}"
    path = new / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.fchown(fd, uid, gid)
    with os.fdopen(fd, "wb") as f:
        f.write(raw)


def fill(dovecot, users: list, n: int) -> Corpus:
    rng = random.Random(42)
    corpus = Corpus([], [], [], [])
    t0 = 1_760_000_000
    dirs = [make_maildir(dovecot, u.username) for u in users]
    for i in range(n):
        raw = generate(rng, i, corpus, t0)
        for new in dirs:
            deliver(new, raw, i, t0, dovecot.mail_uid, dovecot.mail_gid)
    return corpus


def mailbox_status(user, timeout: float = 300) -> tuple[int, int]:
    """(EXISTS, UNSEEN) of INBOX; the first SELECT makes Dovecot index the maildir."""
    client = IMAPClient(user.host, user.port, ssl=False, timeout=timeout)
    try:
        client.login(user.username, user.password)
        exists = client.select_folder("INBOX")[b"EXISTS"]
        unseen = client.folder_status("INBOX", [b"UNSEEN"])[b"UNSEEN"]
        return exists, unseen
    finally:
        with contextlib.suppress(Exception):
            client.logout()


# ---------------------------------------------------------------------------------------------
# Running and measuring children


@dataclass
class Run:
    rc: int
    wall: float
    cpu: float
    rss_mb: float | None
    tree_rss_mb: float  # peak of the summed PSS of every process in the run's session
    stdout: str
    stderr: str


class TreeRss(threading.Thread):
    """Samples the memory of a whole session (the command, its parsing helpers, GNU time)
    every 20 ms, because GNU time's %M is the peak of one process only. Summed as PSS
    (proportional set size), so pages the processes share, such as libpython, count once."""

    def __init__(self, session: int) -> None:
        super().__init__(daemon=True)
        self.session, self.peak_mb, self.done = session, 0.0, threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.02):
            self.peak_mb = max(self.peak_mb, self.sample())

    def stop(self) -> None:
        self.done.set()
        self.join(timeout=5)

    def sample(self) -> float:
        total_kb = 0
        for pid, fields in proc_stats().items():
            if int(fields[3]) != self.session:  # field 6 of stat is the session id
                continue
            try:
                for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                    if line.startswith("Pss:"):
                        total_kb += int(line.split()[1])
            except (OSError, ValueError):
                continue  # the process ended while we looked
        return total_kb / 1024


def run_child(argv: list[str], env: dict[str, str], timeout: float,
              sample_memory: bool = True) -> Run:
    """Run argv in its own process group (killed as a whole on timeout); wall time, the
    user+sys CPU of the whole tree, and the peak RSS of the command (GNU time's %M).
    `sample_memory=False` for the polls: the sampler's own CPU would slow what it measures."""
    rss_file = None
    if os.access(TIME_BIN, os.X_OK):
        fd, rss_file = tempfile.mkstemp(prefix="mb-bench-rss-")
        os.close(fd)
        argv = [TIME_BIN, "-o", rss_file, "-f", "%M", *argv]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    sampler = TreeRss(proc.pid)
    if sample_memory:
        sampler.start()
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=30)
        err += f"\n[bench] killed after {timeout:.0f} s\n".encode()
    wall = time.perf_counter() - start
    if sample_memory:
        sampler.stop()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    rss = None
    if rss_file:
        lines = Path(rss_file).read_text().split()
        os.unlink(rss_file)
        if lines and lines[-1].isdigit():
            rss = int(lines[-1]) / 1024
    elif after.ru_maxrss > before.ru_maxrss:  # a max over all children: only a new peak counts
        rss = after.ru_maxrss / 1024
    return Run(proc.returncode, wall, cpu, rss, sampler.peak_mb, out.decode(errors="replace"),
               err.decode(errors="replace"))


def report_failure(label: str, run: Run) -> None:
    if run.rc != 0:
        print(f"[{label}] exit code {run.rc}; stderr:\n{run.stderr[-4000:]}", file=sys.stderr)
    elif run.stderr.strip():
        print(f"[{label}] (exit 0) stderr:\n{run.stderr[-2000:]}", file=sys.stderr)



def mark_unseen(user, timeout: float = 300) -> None:
    """The whole INBOX unread again, for the next round's sync."""
    client = IMAPClient(user.host, user.port, ssl=False, timeout=timeout)
    try:
        client.login(user.username, user.password)
        client.select_folder("INBOX")
        client.remove_flags("1:*", [b"\\Seen"], silent=True)
    finally:
        with contextlib.suppress(Exception):
            client.logout()


def proc_stats() -> dict[int, list[str]]:
    """Each process alive now: the fields of /proc/PID/stat after its name (state, ppid, …,
    utime at 11, stime, cutime, cstime)."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError):  # the process ended while we looked
            found[int(stat.parent.name)] = stat.read_text().rsplit(")", 1)[1].split()
    return found


def tree(pid: int) -> list[int]:
    """pid and every process descended from it, alive now."""
    parents = {child: int(fields[1]) for child, fields in proc_stats().items()}
    found = [pid]
    for member in found:
        found.extend(child for child, parent in parents.items() if parent == member)
    return found


def pin(root: int, cores: set[int]) -> None:
    """root's process tree onto cores, every thread of each process (affinity is a thread's);
    a process or thread started later inherits its parent's. Looked over again until no
    process appears that was forked while it was pinned."""
    done: set[int] = set()
    for _ in range(5):
        found = [pid for pid in tree(root) if pid not in done]
        if not found:
            return
        for pid in found:
            for task in Path(f"/proc/{pid}/task").glob("[0-9]*"):
                with contextlib.suppress(ProcessLookupError, OSError):
                    os.sched_setaffinity(int(task.name), cores)
        done.update(found)


def apart(dovecot_pid: int, postmaster: int | None) -> str:
    """--db-apart: the last core for the database server (`postmaster`, if one runs), the
    others for this process (and so for the clients it starts) and Dovecot."""
    cores = sorted(os.sched_getaffinity(0))
    database, rest = {cores[-1]}, set(cores[:-1])
    pin(os.getpid(), rest)
    pin(dovecot_pid, rest)
    if postmaster is None:
        return (f"cores: mailbridge, the other clients and Dovecot on {sorted(rest)}; "
                f"{sorted(database)}, the database server's, left idle (no PostgreSQL run)")
    pin(postmaster, database)
    return (f"cores: PostgreSQL on {sorted(database)}, mailbridge, the other clients and "
            f"Dovecot on {sorted(rest)}")


def tree_cpu(pid: int) -> float:
    """User+sys CPU seconds of a server's main process, of the children it has reaped, and of
    its children alive now (PostgreSQL's backends, Dovecot's imap processes)."""
    total = 0
    for member, fields in proc_stats().items():
        if member == pid:
            total += sum(int(f) for f in fields[11:15])
        elif int(fields[1]) == pid:
            total += sum(int(f) for f in fields[11:13])
    return total / os.sysconf("SC_CLK_TCK")


FACTS = (("rows in messages", "SELECT count(*) FROM messages"),
         ("MB raw", "SELECT coalesce(sum(length(raw)), 0) / 1e6 FROM messages"),
         ("parse errors", "SELECT count(*) FROM messages WHERE parse_error IS NOT NULL"),
         ("tickets", "SELECT count(*) FROM tickets"))


class SqliteStores:
    """A fresh SQLite store for each sync, in the work folder."""

    kind = "sqlite"

    def __init__(self, work: Path) -> None:
        self.work, self.made = work, 0
        self.path: Path | None = None

    def fresh(self) -> dict[str, Any]:
        """The [store] table of a new, empty store (the previous one is removed)."""
        self.drop()
        self.made += 1
        self.path = self.work / f"sqlite-{self.made}" / "mailbridge.db"
        self.path.parent.mkdir(parents=True)
        return {"path": str(self.path)}

    def value(self, sql: str) -> Any:
        with contextlib.closing(sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)) as conn:
            return conn.execute(sql).fetchone()[0]

    def size_mb(self) -> float:
        return sum(p.stat().st_size for p in self.path.parent.iterdir() if p.is_file()) / 1e6

    def server_cpu(self) -> float:
        return 0.0  # SQLite works inside the mailbridge process

    def drop(self) -> None:
        if self.path is not None:
            shutil.rmtree(self.path.parent, ignore_errors=True)
            self.path = None


class PostgresStores:
    """A fresh database of the throwaway cluster for each sync."""

    kind = "postgresql"

    def __init__(self, server) -> None:
        self.server = server
        self.database = ""
        self.postmaster = int((server.data / "postmaster.pid").read_text().split()[0])

    def fresh(self) -> dict[str, Any]:
        """The [store] table of a new, empty database (the previous one is dropped)."""
        self.drop()
        self.database = self.server.new_database()
        return {"url": self.server.url(self.database), "password": {"env": PG_PASSWORD_ENV}}

    def value(self, sql: str) -> Any:
        return self.server.sql(sql, self.database)[0][0]

    def size_mb(self) -> float:
        return float(self.value("SELECT pg_database_size(current_database())")) / 1e6

    def server_cpu(self) -> float:
        return tree_cpu(self.postmaster)

    def drop(self) -> None:
        if self.database:
            self.server.drop_database(self.database)
            self.database = ""


def store_facts(stores) -> str:
    """Rows, raw bytes, parse errors and tickets in the store (whatever of it can be read)."""
    facts = []
    for label, sql in FACTS:
        try:
            value = stores.value(sql)
        except Exception as exc:  # noqa: BLE001 - sqlite3's or psycopg's, reported as found
            facts.append(f"{label}: {' '.join(str(exc).split())}")
            continue
        facts.append(f"{float(value):.1f} {label}" if label == "MB raw" else f"{value} {label}")
    try:
        size = f"store {stores.size_mb():.1f} MB"
    except Exception as exc:  # noqa: BLE001 - as above
        size = f"store size: {exc}"
    return ", ".join(facts) + "; " + size


def write_config(root: Path, user, store: dict[str, Any]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    config = root / "config.toml"
    config.write_text(tomli_w.dumps({
        "store": store,
        "channel": [{"name": "bench", "main_email": "support@example.com", "incoming": {
            "type": "imap", "host": "127.0.0.1", "port": user.port, "security": "none",
            "username": user.username, "password": {"env": PASSWORD_ENV}}}],
    }))
    return config


def mb_env(user) -> dict[str, str]:
    from servers.postgres import PASSWORD

    env = dict(os.environ)
    env[PASSWORD_ENV] = user.password
    env[PG_PASSWORD_ENV] = PASSWORD
    env.pop("MAILBRIDGE_CONFIG", None)
    # An installed tool has its bytecode compiled; without it every poll compiles ~60 modules.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def fmt_line(label: str, n: int, mb: float, run: Run) -> str:
    rss = f"{run.rss_mb:.0f} MB" if run.rss_mb is not None else "n/a"
    return (f"{label} {n} msgs, {mb:.1f} MB in {run.wall:.2f} s = {n / run.wall:.0f} msg/s, "
            f"{mb / run.wall:.2f} MB/s; CPU {run.cpu:.2f} s ({run.cpu / n * 1000:.3f} ms/msg); "
            f"peak RSS {rss} "
            f"(all processes together, PSS: {run.tree_rss_mb:.0f} MB)")


@dataclass
class Sync:
    """A timed sync and the CPU the servers spent while it ran."""
    run: Run
    dovecot_cpu: float
    store_cpu: float


@dataclass
class StoreFigures:
    """Everything measured of one store kind."""
    kind: str
    syncs: list[Sync] = field(default_factory=list)
    polls: list[float] = field(default_factory=list)


def timed_sync(python: str, root: Path, user, stores, dovecot_pid: int,
               timeout: float) -> Sync:
    """A sync of `user`'s INBOX into a fresh store of `stores`, after the disk is quiet."""
    config = write_config(root, user, stores.fresh())
    os.sync()  # the previous sync's writes are not flushed on this one's time
    dovecot0, store0 = tree_cpu(dovecot_pid), stores.server_cpu()
    run = run_child([python, "-m", "mailbridge", "--config", str(config), "sync", "--quiet"],
                    mb_env(user), timeout)
    sync = Sync(run, tree_cpu(dovecot_pid) - dovecot0, stores.server_cpu() - store0)
    report_failure(f"mailbridge sync ({stores.kind})", run)
    return sync


def polls(python: str, root: Path, user) -> list[float]:
    """The cron poll: the same sync with nothing new, POLLS times (the last store)."""
    cmd = [python, "-m", "mailbridge", "--config", str(root / "config.toml"), "sync", "--quiet"]
    # A cron poll comes minutes after the last sync, not while the VM is still writing
    # back the hundreds of MB that sync wrote (that made the first polls 30 % slower).
    os.sync()
    walls = []
    for k in range(POLLS):
        poll = run_child(cmd, mb_env(user), 120, sample_memory=False)
        report_failure(f"mailbridge poll {k + 1}", poll)
        walls.append(poll.wall)
    return walls


def summary(figures: StoreFigures, n: int, mb: float) -> list[str]:
    label = f"mailbridge, {figures.kind}:"
    lines = []
    for sync in figures.syncs:
        servers = f"; servers' CPU: Dovecot {sync.dovecot_cpu:.2f} s" + (
            f", PostgreSQL {sync.store_cpu:.2f} s" if figures.kind == "postgresql" else "")
        lines.append(fmt_line(label, n, mb, sync.run) + servers
                     + ("" if sync.run.rc == 0 else f"; EXIT {sync.run.rc}"))
    if figures.polls:
        lines.append(f"{label} poll (median of {POLLS}) {statistics.median(figures.polls):.2f} s"
                     f" ({', '.join(f'{p:.2f}' for p in figures.polls)})")
    return lines


def ratios(sqlite: StoreFigures, postgres: StoreFigures) -> list[str]:
    """PostgreSQL against SQLite, round by round (msg/s is the inverse of wall time)."""
    speed = [s.run.wall / p.run.wall for s, p in zip(sqlite.syncs, postgres.syncs, strict=True)]
    cpu = [p.run.cpu / s.run.cpu for s, p in zip(sqlite.syncs, postgres.syncs, strict=True)]
    total = [(p.run.cpu + p.store_cpu) / s.run.cpu
             for s, p in zip(sqlite.syncs, postgres.syncs, strict=True)]
    rounds = f" (rounds: {', '.join(f'{r:.2f}' for r in speed)})" if len(speed) > 1 else ""
    met = "met" if statistics.median(speed) >= TARGET_RATIO else "NOT met"
    lines = [f"PostgreSQL/SQLite msg/s: {statistics.median(speed):.2f}x{rounds}; target "
             f">= {TARGET_RATIO}x: {met}",
             f"PostgreSQL/SQLite CPU: mailbridge {statistics.median(cpu):.2f}x, mailbridge + "
             f"PostgreSQL server {statistics.median(total):.2f}x"]
    if sqlite.polls and postgres.polls:
        poll = statistics.median(postgres.polls) / statistics.median(sqlite.polls)
        lines.append(f"PostgreSQL/SQLite poll: {poll:.2f}x")
    return lines


# ---------------------------------------------------------------------------------------------
# The reference loop (runs in a child: `bench_imap.py --reference-worker ...`)


class DelayProxy:
    """A TCP proxy on 127.0.0.1 to `port` that delays every chunk by `seconds` each way
    (latency without a bandwidth limit), in a thread of its own; `port` is where it listens."""

    def __init__(self, target: int, seconds: float) -> None:
        self.target, self.seconds = target, seconds
        self.loop = asyncio.new_event_loop()
        started = threading.Event()
        self.port = 0

        async def serve() -> None:
            server = await asyncio.start_server(self._client, "127.0.0.1", 0)
            self.port = server.sockets[0].getsockname()[1]
            started.set()
            await server.serve_forever()

        threading.Thread(target=lambda: self.loop.run_until_complete(serve()),
                         daemon=True).start()
        if not started.wait(10):
            raise RuntimeError("the latency proxy did not start")

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self.target)
        await asyncio.gather(self._pipe(reader, server_writer), self._pipe(server_reader, writer),
                             return_exceptions=True)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                await asyncio.sleep(max(0.0, due - self.loop.time()))
                if not data:
                    writer.close()
                    return
                writer.write(data)
                await writer.drain()

        delivering = asyncio.ensure_future(deliver())
        try:
            while data := await reader.read(1 << 16):
                queue.put_nowait((self.loop.time() + self.seconds, data))
        finally:
            queue.put_nowait((self.loop.time() + self.seconds, b""))
            await delivering


def reference_worker(host: str, port: int, username: str, db_path: str) -> None:
    import sqlite_utils

    db = sqlite_utils.Database(db_path)
    table = db["messages"]
    client = IMAPClient(host, port, ssl=False, timeout=60)
    client.login(username, os.environ[PASSWORD_ENV])
    client.select_folder("INBOX")
    uids = sorted(client.search(["UNSEEN"]))
    count = size = bad = 0
    for pos in range(0, len(uids), BATCH):
        batch = uids[pos:pos + BATCH]
        fetched = client.fetch(batch, ["BODY.PEEK[]"])
        rows = []
        for uid in batch:
            raw = fetched[uid][b"BODY[]"]
            msg = email.message_from_bytes(raw, policy=email.policy.default)
            subject, sender = str(msg["subject"] or ""), str(msg["from"] or "")
            try:
                msg.get_body(("plain", "html")).get_content()
            except Exception:  # noqa: BLE001 - the reference only touches the body
                bad += 1
            rows.append({"uid": uid, "subject": subject, "from": sender, "raw": raw})
            size += len(raw)
        with db.conn:
            table.insert_all(rows, pk="uid")
        client.add_flags(batch, [b"\\Seen"], silent=True)
        count += len(batch)
    client.logout()
    print(json.dumps({"count": count, "bytes": size, "body_errors": bad}))


# ---------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("n", nargs="?", type=int, default=None, help="messages (20000)")
    parser.add_argument("--quick", action="store_true", help="2000 messages")
    parser.add_argument("--store", choices=[*STORES, "both"], default="both",
                        help="which store mailbridge syncs into (both: SQLite, then PostgreSQL "
                             "in a throwaway cluster)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="timed syncs per store, the stores in turn (1)")
    parser.add_argument("--python", default=sys.executable,
                        help="interpreter that runs mailbridge, e.g. .venv/bin/python of "
                             "scripts/install.sh (default: this one)")
    parser.add_argument("--profile", action="store_true",
                        help="also profile a mailbridge sync (cProfile) into each store, on "
                             "users of their own")
    parser.add_argument("--no-reference", action="store_true",
                        help="skip the plain reference loop")
    parser.add_argument("--no-mbsync", action="store_true",
                        help="skip mbsync (otherwise installed from Debian's isync if missing)")
    parser.add_argument("--timeout", type=float, default=900.0,
                        help="seconds allowed for each sync (900)")
    parser.add_argument("--latency-ms", type=float, default=0.0,
                        help="delay each way between the IMAP clients and Dovecot, through a "
                             "proxy (0: none; 5 means 10 ms round trips)")
    parser.add_argument("--db-apart", action="store_true",
                        help="the database server on a core of its own, everything else on "
                             "the other cores (as a database server on a machine apart)")
    parser.add_argument("--reference-worker", nargs=4, metavar=("HOST", "PORT", "USER", "DB"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reference_worker:
        host, port, username, db = args.reference_worker
        reference_worker(host, int(port), username, db)
        return 0
    if args.rounds < 1:
        parser.error("--rounds: at least 1")
    if args.db_apart and len(os.sched_getaffinity(0)) < 2:
        parser.error("--db-apart: needs at least 2 cores")
    n = args.n if args.n is not None else (2000 if args.quick else 20000)
    kinds = STORES if args.store == "both" else (args.store,)

    sys.path.insert(0, str(REPO / "tests"))
    from servers.dovecot import Dovecot
    from servers.postgres import Postgres

    dovecot = Dovecot()
    # PostgreSQL as deployed (durable defaults), not the tests' fsync-less cluster
    postgres = Postgres({"shared_preload_libraries": "pg_stat_statements"} if args.profile
                        else {}) if "postgresql" in kinds else None
    work = Path(tempfile.mkdtemp(prefix="mb-bench-imap-"))
    stores: dict[str, Any] = {}
    try:
        dovecot.start()
        if postgres is not None:
            postgres.start()
            stores["postgresql"] = PostgresStores(postgres)
        if "sqlite" in kinds:
            stores["sqlite"] = SqliteStores(work / "stores")
        mbsync_bin = None if args.no_mbsync else ensure_mbsync()
        names = [*kinds, *([] if args.no_reference else ["reference"]),
                 *([] if mbsync_bin is None else ["mbsync"]),
                 *([f"profile-{k}" for k in kinds] if args.profile else [])]
        users = {name: dovecot.add_user() for name in names}
        started = time.perf_counter()
        corpus = fill(dovecot, list(users.values()), n)
        mb_total = corpus.wire_bytes / 1e6
        print(f"generated {n} messages, {corpus.file_bytes / 1e6:.1f} MB in maildir (LF), "
              f"{mb_total:.1f} MB as served (CRLF), per user, in "
              f"{time.perf_counter() - started:.1f} s", flush=True)
        for name, user in users.items():
            started = time.perf_counter()
            exists, unseen = mailbox_status(user)
            print(f"  {name} ({user.username}): EXISTS {exists}, UNSEEN {unseen} (first SELECT "
                  f"{time.perf_counter() - started:.1f} s)", flush=True)
            if exists != n or unseen != n:
                print(f"ERROR: expected {n} unread messages; dovecot log:\n"
                      f"{dovecot.log_tail()}", file=sys.stderr)
                return 1

        # The clients measured reach Dovecot through the proxy; setting up and checking do not.
        clients = users
        if args.latency_ms > 0:
            proxy = DelayProxy(dovecot.port, args.latency_ms / 1000)
            clients = {name: dataclasses.replace(user, port=proxy.port)
                       for name, user in users.items()}
            print(f"IMAP clients reach Dovecot through a proxy adding {args.latency_ms:g} ms "
                  "each way", flush=True)
        if args.db_apart:
            server = stores.get("postgresql")
            print(apart(dovecot.proc.pid, server.postmaster if server else None), flush=True)
        figures = {kind: StoreFigures(kind) for kind in kinds}
        mbsync_runs: list[Run] = []
        for k in range(args.rounds):
            for kind in (kinds if k % 2 == 0 else kinds[::-1]):
                user = users[kind]
                if k:
                    mark_unseen(user)
                print(f"mailbridge sync into {kind}, round {k + 1} ...", flush=True)
                figures[kind].syncs.append(timed_sync(args.python, work / kind, clients[kind],
                                                      stores[kind], dovecot.proc.pid,
                                                      args.timeout))
                exists, unseen = mailbox_status(user)
                print(f"  check: {store_facts(stores[kind])}; server EXISTS {exists}, "
                      f"UNSEEN {unseen}", flush=True)
                if k == 0:
                    figures[kind].polls = polls(args.python, work / kind, clients[kind])
            if mbsync_bin is not None:
                mbsync_runs.append(mbsync(mbsync_bin, work / f"round-{k + 1}",
                                          clients["mbsync"], n, args.timeout))

        ref_run = None
        if not args.no_reference:
            ref_run = reference(work, clients["reference"], args.timeout)

        profiles = []
        if args.profile:
            profiles = [run_profile(work / f"profile-{kind}", clients[f"profile-{kind}"],
                                    stores[kind], n, args.timeout) for kind in kinds]

        print()
        print("=" * 100)
        for kind in kinds:
            print("\n".join(summary(figures[kind], n, mb_total)))
        if ref_run is not None:
            print(fmt_line("reference: ", n, mb_total, ref_run)
                  + ("" if ref_run.rc == 0 else f"; EXIT {ref_run.rc}"))
            for kind in kinds:
                mine = figures[kind].syncs[0].run
                found = [f"wall {mine.wall / ref_run.wall:.2f}x",
                         f"CPU {mine.cpu / ref_run.cpu:.2f}x"]
                if mine.rss_mb and ref_run.rss_mb:
                    found.append(f"peak RSS {mine.rss_mb / ref_run.rss_mb:.2f}x")
                print(f"ratio mailbridge ({kind}, round 1)/reference: " + ", ".join(found))
        for k, mbsync_run in enumerate(mbsync_runs):
            print(fmt_line(f"mbsync, round {k + 1}: ", n, mb_total, mbsync_run)
                  + ("" if mbsync_run.rc == 0 else f"; EXIT {mbsync_run.rc}"))
        for kind in kinds if mbsync_runs else ():
            rounds = list(zip(figures[kind].syncs, mbsync_runs, strict=True))
            speed = [theirs.wall / mine.run.wall for mine, theirs in rounds]
            cpu = [mine.run.cpu / theirs.cpu for mine, theirs in rounds]
            each = f" (rounds: {', '.join(f'{r:.2f}' for r in speed)})" if len(speed) > 1 else ""
            print(f"ratio mailbridge ({kind})/mbsync: msg/s {statistics.median(speed):.2f}x"
                  f"{each}, CPU {statistics.median(cpu):.1f}x (medians of {len(speed)} "
                  "round(s))")
        if len(kinds) == 2:
            print("\n".join(ratios(figures["sqlite"], figures["postgresql"])))
        print("=" * 100)
        for text in profiles:
            print(text)
        return 0
    finally:
        for found in stores.values():
            found.drop()
        if postgres is not None:
            postgres.close()
        dovecot.close()
        shutil.rmtree(work, ignore_errors=True)


def reference(work: Path, user, timeout: float) -> Run:
    print("reference loop ...", flush=True)
    ref_cmd = [sys.executable, str(Path(__file__).resolve()), "--reference-worker",
               user.host, str(user.port), user.username, str(work / "reference.db")]
    ref_run = run_child(ref_cmd, mb_env(user), timeout)
    report_failure("reference", ref_run)
    ref_out = {}
    with contextlib.suppress(ValueError, IndexError):
        ref_out = json.loads(ref_run.stdout.strip().splitlines()[-1])
    exists, unseen = mailbox_status(user)
    print(f"  reference check: {ref_out.get('count')} fetched, "
          f"{(ref_out.get('bytes') or 0) / 1e6:.1f} MB, {ref_out.get('body_errors')} "
          f"get_body errors; server EXISTS {exists}, UNSEEN {unseen}", flush=True)
    return ref_run


def ensure_mbsync() -> str | None:
    """mbsync, from Debian's isync package when it is not installed yet (root only: apt-get);
    None, with a word why, when it cannot be had."""
    found = shutil.which("mbsync")
    if found or subprocess.run(["dpkg", "-s", "isync"], capture_output=True).returncode == 0:
        return found
    if os.geteuid() != 0:
        print("mbsync: isync is not installed and this is not root; skipped", flush=True)
        return None
    print("mbsync: installing Debian's isync ...", flush=True)
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "isync"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (install, ["apt-get", "update", "-q"], install):
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=600, env=env)
        except subprocess.TimeoutExpired:
            break
        if done.returncode == 0 and argv is install and shutil.which("mbsync"):
            return shutil.which("mbsync")
    print("mbsync: could not install isync; skipped", flush=True)
    return None


MBSYNCRC = """IMAPAccount bench
Host {host}
Port {port}
User {user}
PassCmd "printenv {password_env}"
SSLType None
AuthMechs LOGIN

IMAPStore remote
Account bench

MaildirStore local
Path {maildir}/
Inbox {maildir}/INBOX

Channel bench
Far :remote:
Near :local:
Patterns INBOX
Sync Pull
Create Near
SyncState *
"""


def mbsync(binary: str, work: Path, user, n: int, timeout: float) -> Run:
    """mbsync pulls INBOX into a fresh Maildir under `work` (removed afterwards): the speed
    of a tool that only copies bytes."""
    print("mbsync ...", flush=True)
    root = work / "mbsync"
    (root / "Maildir").mkdir(parents=True)
    (root / "mbsyncrc").write_text(MBSYNCRC.format(
        host=user.host, port=user.port, user=user.username, password_env=PASSWORD_ENV,
        maildir=root / "Maildir"))
    os.sync()
    run = run_child([binary, "-q", "-c", str(root / "mbsyncrc"), "bench"], mb_env(user),
                    timeout)
    report_failure("mbsync", run)
    inbox = root / "Maildir" / "INBOX"
    copied = sum(len(list((inbox / sub).iterdir())) for sub in ("new", "cur")
                 if (inbox / sub).is_dir())
    print(f"  mbsync check: {copied} of {n} messages in the Maildir", flush=True)
    shutil.rmtree(root, ignore_errors=True)
    return run


def run_profile(root: Path, user, stores, n: int, timeout: float) -> str:
    prof = Path(tempfile.gettempdir()) / f"mb-bench-imap-{stores.kind}.prof"
    config = write_config(root, user, stores.fresh())
    cmd = [sys.executable, "-m", "cProfile", "-o", str(prof), "-m", "mailbridge",
           "--config", str(config), "sync", "--quiet"]
    print(f"mailbridge sync into {stores.kind} under cProfile ...", flush=True)
    if stores.kind == "postgresql":
        stores.server.sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        stores.server.sql("SELECT pg_stat_statements_reset()")
    run = run_child(cmd, mb_env(user), timeout)
    report_failure(f"mailbridge (cProfile, {stores.kind})", run)
    statements = statement_stats(stores, n) if stores.kind == "postgresql" else ""
    if not prof.exists():
        return f"profile ({stores.kind}): no output"
    import io

    out = io.StringIO()
    stats = pstats.Stats(str(prof), stream=out)
    stats.sort_stats("cumulative").print_stats(25)
    stats.sort_stats("cumulative").print_stats(r"/mailbridge/(?!__main__|cli/app)", 25)
    stats.sort_stats("tottime").print_stats(15)
    return (f"profile, {stores.kind} ({prof}; wall {run.wall:.2f} s under cProfile, exit "
            f"{run.rc}):\n" + out.getvalue() + statements)


def statement_stats(stores, n: int) -> str:
    """What the sync asked of PostgreSQL (pg_stat_statements, reset before it): statements
    per message and the server's own time for them, the most frequent first."""
    rows = stores.server.sql(
        "SELECT calls, total_exec_time, query FROM pg_stat_statements "
        f"WHERE dbid = (SELECT oid FROM pg_database WHERE datname = '{stores.database}') "
        "ORDER BY calls DESC")
    calls = sum(r[0] for r in rows)
    server_ms = sum(r[1] for r in rows)
    lines = [f"PostgreSQL statements of the profiled sync: {calls} for {n} messages = "
             f"{calls / n:.1f} a message; the server's execution time {server_ms / 1000:.2f} s "
             f"({1000 * server_ms / max(calls, 1):.0f} µs a statement)",
             f"{'calls':>8} {'/msg':>6} {'total s':>8} {'µs each':>8}  statement"]
    for count, total_ms, query in rows[:20]:
        lines.append(f"{count:>8} {count / n:>6.2f} {total_ms / 1000:>8.2f} "
                     f"{1000 * total_ms / count:>8.0f}  {' '.join(query.split())[:110]}")
    lines.append("tables' scans (a sequential scan of a growing table makes a sync quadratic):")
    for table, seq, seq_rows, idx in stores.server.sql(
            "SELECT relname, seq_scan, seq_tup_read, coalesce(idx_scan, 0) FROM "
            "pg_stat_user_tables WHERE seq_scan + coalesce(idx_scan, 0) > 0 ORDER BY seq_tup_read "
            "DESC", stores.database):
        lines.append(f"  {table}: {seq} sequential ({seq_rows} rows read), {idx} by index")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
