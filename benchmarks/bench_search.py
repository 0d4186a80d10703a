"""Full-text search over N generated messages, on SQLite and PostgreSQL (prints figures;
asserts nothing).

What it measures:

* The store is filled through its own insert path (store.messages.insert and the ticket
  threading of store.tickets, as the ingest pipeline calls them), in transactions of 500
  messages, from generated mail: a vocabulary of ~12 000 words drawn with a Zipf-like skew
  (a few words everywhere, most rare), English, German, French, Russian and Japanese words
  mixed in, subjects of 3-8 words, bodies of 20-400 words, senders with names and addresses
  of a few hundred companies, 15 % with 1-3 attachment names, ~40 % replies threaded into an
  existing ticket. Reproducible (random.Random(20)).
* Twice for each store: with the index (as shipped) and without it (the index dropped and
  its upkeep switched off), so the difference is what the index costs: ingest time (wall) and
  store size (the SQLite file after a checkpoint; PostgreSQL's database size after VACUUM).
  Then migration m010 on the store filled without it: the time to index a store that
  existed before (FullText.create).
* Search latency, p50 and p95 of --repeat runs of each query kind, as `tickets search
  --limit 30` reads it: the first 30 hits with their snippets, and the count of all hits
  (the "... N more" line). Interpreter start and printing are not included.

PostgreSQL is a throwaway cluster (tests/servers/postgres.py, as bench_imap.py uses it) with
its durable defaults, on the same host.

Run (as root, with Debian's postgresql installed):

    python benchmarks/bench_search.py [N] [--store sqlite|postgresql|both] [--repeat K]

N defaults to 100 000.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mailbridge.domain.message import Address, Attachment, ParsedMessage  # noqa: E402
from mailbridge.domain.search import parse  # noqa: E402
from mailbridge.store import messages, search, tickets  # noqa: E402
from mailbridge.store.db import Store  # noqa: E402
from mailbridge.store.fulltext import FullText  # noqa: E402

BATCH = 500
LIMIT = 30
CHANNEL = "bench"

def _words(text: str) -> list[str]:
    return text.split()


COMMON = _words(
    "the please could you check status order invoice delivery account printer error request "
    "urgent refund shipping address update subscription login page help thanks again tomorrow "
    "issue customer support ticket reply attached report meeting price quote contract renewal "
    "payment server email password reset network laptop")
FOREIGN = _words(
    "Grüße Straße Bestellung Rechnung Lieferung Anfrage commande déjà reçu garçon façade "
    "информация заказ счёт доставка оплата принтер ошибка возврат 注文 配送 ありがとう naïve "
    "café résumé")
SYLLABLES = _words("ka ro mi ten sul bar vex lo qui dra ny fen tor pa li gos un er ax ho ble "
                   "ter mon vis cal dor")
EXTENSIONS = ("pdf", "png", "jpg", "docx", "xlsx", "zip", "csv", "txt")
FIRST = _words("John Mary Robert Linda Zoë Łukasz Ольга Jürgen François Inês Søren Renée Ahmet "
               "Yuki Priya Carlos")
LAST = _words("Smith Johnson Brown Müller Żółć Смирнова Weiß Lefèvre Conceição Kierkegård "
              "Dupont Yılmaz Tanaka Patel García")
RARE_RANK = 8000  # a word of the vocabulary's long tail: in a few messages of 100 000


class Vocabulary:
    def __init__(self, rng: random.Random) -> None:
        invented = {"".join(rng.choices(SYLLABLES, k=rng.randint(2, 4))) for _ in range(14000)}
        self.words = COMMON + FOREIGN + sorted(invented)
        # Zipf-like: the k-th word's weight is 1/k
        self.weights = [1 / (k + 1) for k in range(len(self.words))]
        self.rng = rng

    def take(self, k: int) -> list[str]:
        return self.rng.choices(self.words, self.weights, k=k)

    def sentence(self, lo: int, hi: int) -> str:
        return " ".join(self.take(self.rng.randint(lo, hi))).capitalize()


def generated(n: int) -> Iterator[tuple[bytes, ParsedMessage, bool]]:
    """(raw, parsed, is_reply) for n messages."""
    rng = random.Random(20)
    vocab = Vocabulary(rng)
    companies = [f"{''.join(rng.choices(SYLLABLES, k=2))}{i}" for i in range(300)]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(n):
        subject = vocab.sentence(3, 8)
        body = "\n\n".join(vocab.sentence(10, 40) + "." for _ in range(rng.randint(1, 10)))
        name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        email = f"{name.split()[0].lower()}.{i % 997}@{rng.choice(companies)}.example"
        attachments = tuple(
            Attachment(f"{'-'.join(vocab.take(rng.randint(1, 3)))}.{rng.choice(EXTENSIONS)}",
                       "application/octet-stream", 1000, "0" * 64, None, False, b"")
            for _ in range(rng.randint(1, 3) if rng.random() < 0.15 else 0))
        raw = (f"From: {name} <{email}>\nTo: support@example.com\nSubject: {subject}\n"
               f"Message-ID: <{i}@bench.example>\n\n{body}\n").encode()
        parsed = ParsedMessage(
            subject=subject, sender=Address(name, email), to=(Address("", "support@example.com"),),
            cc=(), reply_to=(), message_id=f"{i}@bench.example", in_reply_to=None,
            references=(), date=start + timedelta(minutes=i), text=body, html=None,
            attachments=attachments, headers=(("From", f"{name} <{email}>"),),
            content_type="text/plain", defects=())
        yield raw, parsed, i > 0 and rng.random() < 0.4


class NoIndex(FullText):
    """The store as it was before m010: nothing indexed."""

    def add(self, messages: object) -> None:
        pass

    def remove(self, messages: object) -> None:
        pass


def fill(db: Store, n: int, progress: Callable[[int], None]) -> float:
    """Seconds to store n messages and thread them into tickets, BATCH a transaction."""
    rng = random.Random(21)
    ticket_ids: list[int] = []
    source = generated(n)
    began = time.perf_counter()
    done = 0
    while done < n:
        with db.atomic():
            for raw, parsed, reply in (next(source) for _ in range(min(BATCH, n - done))):
                fingerprint = hashlib.sha256(raw).hexdigest()
                message = messages.insert(db, CHANNEL, fingerprint, raw, parsed, "human", None)
                if reply and ticket_ids:
                    ticket = rng.choice(ticket_ids)
                else:
                    ticket = tickets.create(db, CHANNEL, "general", parsed.subject,
                                            parsed.sender.name, parsed.sender.email, "human")
                    ticket_ids.append(ticket)
                tickets.add_message(db, ticket, message)
                done += 1
        progress(done)
    return time.perf_counter() - began


def queries(db: Store) -> dict[str, str]:
    """The query kinds timed, with words taken from the store so that each finds something."""
    sender = db.execute("SELECT from_email FROM messages WHERE id = 1").fetchone()[0]
    attachment = db.execute("SELECT filename FROM attachments ORDER BY id LIMIT 1").fetchone()[0]
    rare = Vocabulary(random.Random(20)).words[RARE_RANK]  # generated() draws the same
    return {
        "common word": "invoice",
        "two words": "printer urgent",
        "rare word": rare,
        'phrase "please could you"': '"please could you"',
        "prefix deliv*": "deliv*",
        "Cyrillic word": "доставка",
        "sender address": sender,
        "attachment name": attachment,
        "no hit": "xylophonequartz",
    }


def timed_search(db: Store, text: str, repeat: int) -> tuple[float, float, int]:
    """p50, p95 (ms) of reading the first LIMIT hits with snippets and counting all."""
    query = parse(text)
    times = []
    total = 0
    for _ in range(repeat):
        began = time.perf_counter()
        hits = search.search_tickets(db, query, tickets.Filter())
        list(hits.rows(LIMIT))
        total = hits.count()
        times.append((time.perf_counter() - began) * 1000)
    times.sort()
    return statistics.median(times), times[max(0, round(0.95 * len(times)) - 1)], total


def sqlite_size(db: Store, path: Path) -> float:
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return sum(f.stat().st_size for f in path.parent.glob(path.name + "*")) / 1e6


def postgres_size(db: Store) -> float:
    return db.execute("SELECT pg_database_size(current_database())").fetchone()[0] / 1e6


def drop_index(db: Store) -> None:
    with db.atomic():
        if db.backend == "sqlite":
            db.execute("DROP TABLE message_fts")
            db.execute("DROP VIEW message_search_source")
        else:
            db.execute("DROP TABLE message_search")


def run_store(kind: str, n: int, repeat: int, work: Path, server) -> None:
    from mailbridge.store.postgres import PostgresBackend
    from mailbridge.store.sqlite import SqliteBackend

    figures = {}
    for indexed in (True, False):
        if kind == "sqlite":
            path = work / f"{'with' if indexed else 'without'}.db"
            backend = SqliteBackend(f"sqlite:{path}")
        else:
            database = server.new_database()
            backend = PostgresBackend(server.url(database, password=True))
        db = backend.connect()
        kept = db.fulltext
        if not indexed:
            drop_index(db)
            db.fulltext = NoIndex(db)

        def progress(done: int, label: str = "with" if indexed else "without") -> None:
            if done % 20000 == 0 or done == n:
                print(f"  {kind}, {label} the index: {done} stored", file=sys.stderr,
                      flush=True)

        seconds = fill(db, n, progress)
        if kind == "postgresql":
            db.execute("VACUUM ANALYZE")
            size = postgres_size(db)
        else:
            size = sqlite_size(db, path)
        figures[indexed] = (seconds, size)
        if indexed:
            print(f"\n{kind}: {n} messages, "
                  f"{db.execute('SELECT count(*) FROM tickets').fetchone()[0]} tickets")
            print(f"  {'query':<28} {'p50 ms':>8} {'p95 ms':>8} {'hits':>8}")
            for label, text in queries(db).items():
                p50, p95, total = timed_search(db, text, repeat)
                print(f"  {label:<28} {p50:8.1f} {p95:8.1f} {total:8d}")
        else:
            db.fulltext = kept
            began = time.perf_counter()
            with db.atomic():
                db.fulltext.create()
            migration = time.perf_counter() - began
        db.close()
        backend.close()
    (with_s, with_mb), (without_s, without_mb) = figures[True], figures[False]
    print(f"  ingest: {with_s:.1f} s with the index, {without_s:.1f} s without "
          f"(+{(with_s / without_s - 1) * 100:.0f} %; {n / with_s:.0f} vs {n / without_s:.0f} "
          f"msg/s)")
    print(f"  store size: {with_mb:.0f} MB with the index, {without_mb:.0f} MB without "
          f"(+{(with_mb / without_mb - 1) * 100:.0f} %)")
    print(f"  m010 on the store filled without it: {migration:.1f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("n", nargs="?", type=int, default=100_000)
    parser.add_argument("--store", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    kinds = ("sqlite", "postgresql") if args.store == "both" else (args.store,)
    sys.path.insert(0, str(REPO / "tests"))
    work = Path(tempfile.mkdtemp(prefix="mb-bench-search-"))
    server = None
    try:
        with contextlib.ExitStack() as stack:
            if "postgresql" in kinds:
                from servers.postgres import Postgres

                server = Postgres()
                server.start()
                stack.callback(server.close)
            for kind in kinds:
                run_store(kind, args.n, args.repeat, work, server)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
