"""IMAP sync throughput of mailbridge against a real Dovecot, next to a plain reference loop.

What it measures (prints figures; asserts nothing):

* N generated messages with a realistic mix (plain text, multipart/alternative text+HTML,
  ~15 % with 5-200 KB base64 attachments, utf-8 / iso-8859-1 / koi8-r / windows-1252 /
  us-ascii bodies in 7bit, 8bit, quoted-printable and base64, ~half of them replies with
  In-Reply-To/References), reproducible (random.Random(42)), are written straight into the
  Maildir INBOX of two fresh Dovecot users as unread mail (APPEND one by one is far too slow).
* mailbridge: `python -m mailbridge --config C sync --quiet` in a subprocess on user A - wall
  time, the child's user+sys CPU, its peak RSS; msg/s and MB/s (bytes as served over IMAP,
  CRLF). Then, once the sync's writes are on disk, the same command nine more times with
  nothing new (the cron "poll"): median wall time, interpreter start included.
* reference: a plain imapclient + email + sqlite-utils loop in a subprocess on user B (SEARCH
  UNSEEN, FETCH BODY.PEEK[] in batches of 200, parse, insert one transaction per batch, STORE
  +FLAGS.SILENT \\Seen) - the same figures.
* --profile: additionally runs the mailbridge sync under cProfile on a third, identically
  filled user and prints the top 25 entries by cumulative time, the top 25 of mailbridge's own
  functions by cumulative time, and the top 15 by own time (profile kept in $TMPDIR).

Run (as root, with Debian's dovecot-imapd installed; tests/servers/dovecot.py drives it):

    python benchmarks/bench_imap.py [N] [--quick] [--profile] [--timeout SECONDS] [--python PY]

N defaults to 20000; --quick means 2000. Every wait is bounded (--timeout per sync, 900 s).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
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
from dataclasses import dataclass
from email.header import Header
from email.utils import format_datetime, formataddr
from pathlib import Path

import tomli_w
from imapclient import IMAPClient

REPO = Path(__file__).resolve().parents[1]
PASSWORD_ENV = "MB_BENCH_PW"
TIME_BIN = "/usr/bin/time"
BATCH = 200
POLLS = 9  # this VM's timing noise is ±30 %: one poll says little
DOMAIN = "bench.example"

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
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                if int(stat.read_text().rsplit(")", 1)[1].split()[3]) != self.session:
                    continue  # field 6 of stat is the session id
                for line in (stat.parent / "smaps_rollup").read_text().splitlines():
                    if line.startswith("Pss:"):
                        total_kb += int(line.split()[1])
            except (OSError, IndexError, ValueError):
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


def store_facts(store: Path) -> str:
    """Rows, raw bytes, parse errors and tickets in the store (whatever of it can be read)."""
    facts = []
    queries = [("rows in messages", "SELECT count(*) FROM messages"),
               ("MB raw", "SELECT coalesce(sum(length(raw)), 0) / 1e6 FROM messages"),
               ("parse errors", "SELECT count(*) FROM messages WHERE parse_error IS NOT NULL"),
               ("tickets", "SELECT count(*) FROM tickets")]
    try:
        with contextlib.closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True)) as conn:
            for label, sql in queries:
                try:
                    value = conn.execute(sql).fetchone()[0]
                    facts.append(f"{value:.1f} {label}" if isinstance(value, float)
                                 else f"{value} {label}")
                except sqlite3.Error as exc:
                    facts.append(f"{label}: {exc}")
    except sqlite3.Error as exc:
        return f"store unreadable: {exc}"
    size = sum(p.stat().st_size for p in store.parent.iterdir() if p.is_file())
    return ", ".join(facts) + f"; store files {size / 1e6:.1f} MB"


def write_config(root: Path, user) -> tuple[Path, Path]:
    store = root / "store" / "mailbridge.db"
    store.parent.mkdir(parents=True)
    config = root / "config.toml"
    config.write_text(tomli_w.dumps({
        "store": {"path": str(store)},
        "channel": [{"name": "bench", "main_email": "support@example.com", "incoming": {
            "type": "imap", "host": "127.0.0.1", "port": user.port, "security": "none",
            "username": user.username, "password": {"env": PASSWORD_ENV}}}],
    }))
    return config, store


def mb_env(user) -> dict[str, str]:
    env = dict(os.environ)
    env[PASSWORD_ENV] = user.password
    env.pop("MAILBRIDGE_CONFIG", None)
    # An installed tool has its bytecode compiled; without it every poll compiles ~60 modules.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def fmt_line(label: str, n: int, mb: float, run: Run) -> str:
    rss = f"{run.rss_mb:.0f} MB" if run.rss_mb is not None else "n/a"
    return (f"{label} {n} msgs, {mb:.1f} MB in {run.wall:.2f} s = {n / run.wall:.0f} msg/s, "
            f"{mb / run.wall:.2f} MB/s; CPU {run.cpu:.2f} s; peak RSS {rss} "
            f"(all processes together, PSS: {run.tree_rss_mb:.0f} MB)")


# ---------------------------------------------------------------------------------------------
# The reference loop (runs in a child: `bench_imap.py --reference-worker ...`)


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
    parser.add_argument("--python", default=sys.executable,
                        help="interpreter that runs mailbridge, e.g. .venv/bin/python of "
                             "scripts/install.sh (default: this one)")
    parser.add_argument("--profile", action="store_true",
                        help="also profile a mailbridge sync (cProfile) on a third user")
    parser.add_argument("--timeout", type=float, default=900.0,
                        help="seconds allowed for each sync (900)")
    parser.add_argument("--reference-worker", nargs=4, metavar=("HOST", "PORT", "USER", "DB"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reference_worker:
        host, port, username, db = args.reference_worker
        reference_worker(host, int(port), username, db)
        return 0
    n = args.n if args.n is not None else (2000 if args.quick else 20000)

    sys.path.insert(0, str(REPO / "tests"))
    from servers.dovecot import Dovecot

    dovecot = Dovecot()
    work = Path(tempfile.mkdtemp(prefix="mb-bench-imap-"))
    try:
        dovecot.start()
        users = [dovecot.add_user() for _ in range(3 if args.profile else 2)]
        started = time.perf_counter()
        corpus = fill(dovecot, users, n)
        mb_total = corpus.wire_bytes / 1e6
        print(f"generated {n} messages, {corpus.file_bytes / 1e6:.1f} MB in maildir (LF), "
              f"{mb_total:.1f} MB as served (CRLF), per user, in "
              f"{time.perf_counter() - started:.1f} s", flush=True)
        for user in users:
            started = time.perf_counter()
            exists, unseen = mailbox_status(user)
            print(f"  {user.username}: EXISTS {exists}, UNSEEN {unseen} (first SELECT "
                  f"{time.perf_counter() - started:.1f} s)", flush=True)
            if exists != n or unseen != n:
                print(f"ERROR: expected {n} unread messages; dovecot log:\n"
                      f"{dovecot.log_tail()}", file=sys.stderr)
                return 1
        user_a, user_b = users[0], users[1]

        # mailbridge: the timed sync first (before any other child), then the polls
        config, store = write_config(work / "a", user_a)
        cmd = [args.python, "-m", "mailbridge", "--config", str(config), "sync", "--quiet"]
        env = mb_env(user_a)
        print("mailbridge sync ...", flush=True)
        mb_run = run_child(cmd, env, args.timeout)
        report_failure("mailbridge sync", mb_run)
        # A cron poll comes minutes after the last sync, not while the VM is still writing
        # back the hundreds of MB that sync wrote (that made the first polls 30 % slower).
        os.sync()
        polls = []
        for k in range(POLLS):
            poll = run_child(cmd, env, 120, sample_memory=False)
            report_failure(f"mailbridge poll {k + 1}", poll)
            polls.append(poll.wall)
        exists_a, unseen_a = mailbox_status(user_a)
        print(f"  mailbridge check: {store_facts(store)}; server EXISTS {exists_a}, "
              f"UNSEEN {unseen_a}", flush=True)

        # the reference loop
        print("reference loop ...", flush=True)
        ref_db = work / "reference.db"
        ref_cmd = [sys.executable, str(Path(__file__).resolve()), "--reference-worker",
                   user_b.host, str(user_b.port), user_b.username, str(ref_db)]
        ref_run = run_child(ref_cmd, mb_env(user_b), args.timeout)
        report_failure("reference", ref_run)
        ref_out = {}
        with contextlib.suppress(ValueError, IndexError):
            ref_out = json.loads(ref_run.stdout.strip().splitlines()[-1])
        exists_b, unseen_b = mailbox_status(user_b)
        print(f"  reference check: {ref_out.get('count')} fetched, "
              f"{(ref_out.get('bytes') or 0) / 1e6:.1f} MB, {ref_out.get('body_errors')} "
              f"get_body errors; server EXISTS {exists_b}, UNSEEN {unseen_b}", flush=True)

        profile_text = ""
        if args.profile:
            profile_text = run_profile(work / "c", users[2], args.timeout)

        print()
        print("=" * 100)
        print(fmt_line("mailbridge:", n, mb_total, mb_run)
              + f"; poll (median of {POLLS}) {statistics.median(polls):.2f} s"
              + ("" if mb_run.rc == 0 else f"; EXIT {mb_run.rc}"))
        print(fmt_line("reference: ", n, mb_total, ref_run)
              + ("" if ref_run.rc == 0 else f"; EXIT {ref_run.rc}"))
        ratios = [f"wall {mb_run.wall / ref_run.wall:.2f}x", f"CPU {mb_run.cpu / ref_run.cpu:.2f}x"]
        if mb_run.rss_mb and ref_run.rss_mb:
            ratios.append(f"peak RSS {mb_run.rss_mb / ref_run.rss_mb:.2f}x")
        print("ratio mailbridge/reference: " + ", ".join(ratios))
        print(f"polls (s): {', '.join(f'{p:.2f}' for p in polls)}")
        print("=" * 100)
        if profile_text:
            print(profile_text)
        return 0
    finally:
        dovecot.close()
        shutil.rmtree(work, ignore_errors=True)


def run_profile(root: Path, user, timeout: float) -> str:
    prof = Path(tempfile.gettempdir()) / "mb-bench-imap.prof"
    config, store = write_config(root, user)
    cmd = [sys.executable, "-m", "cProfile", "-o", str(prof), "-m", "mailbridge",
           "--config", str(config), "sync", "--quiet"]
    print("mailbridge sync under cProfile ...", flush=True)
    run = run_child(cmd, mb_env(user), timeout)
    report_failure("mailbridge (cProfile)", run)
    if not prof.exists():
        return "profile: no output"
    import io

    out = io.StringIO()
    stats = pstats.Stats(str(prof), stream=out)
    stats.sort_stats("cumulative").print_stats(25)
    stats.sort_stats("cumulative").print_stats(r"/mailbridge/(?!__main__|cli/app)", 25)
    stats.sort_stats("tottime").print_stats(15)
    return (f"profile ({prof}; wall {run.wall:.2f} s under cProfile, exit {run.rc}):\n"
            + out.getvalue())


if __name__ == "__main__":
    sys.exit(main())
