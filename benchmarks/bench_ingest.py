"""Ingest throughput and peak memory of the drop channel: N generated messages (and the
Zammad corpus, when present) synced into a fresh store. Prints figures; asserts nothing.

    python benchmarks/bench_ingest.py [N]
"""

from __future__ import annotations

import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from mailbridge.config.load import validate
from mailbridge.connectors.drop import deliver, make_spool
from mailbridge.pipeline.report import NullReporter
from mailbridge.services.sync import sync

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "zammad" / "mail"


def generated(i: int) -> bytes:
    reply = f"In-Reply-To: <m{i - 1}@bench.example>\n" if i % 3 else ""
    return (f"From: Customer {i} <c{i % 50}@bench.example>\nTo: support@example.com\n"
            f"Subject: Question number {i // 3}\nMessage-ID: <m{i}@bench.example>\n{reply}"
            "Content-Type: text/plain; charset=utf-8\n\n" + "Some text of a message.\n" * 40
            ).encode()


def run(label: str, fill) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_spool(root / "spool")
        count, size = fill(root / "spool")
        config = validate({"store": {"path": str(root / "s.db")}, "channel": [
            {"name": "bench", "incoming": {"type": "drop", "spool": str(root / "spool")}}]},
            root / "c.toml")
        start = time.perf_counter()
        [result] = sync(config, [], NullReporter()).channels
        took = time.perf_counter() - start
        print(f"{label}: {count} messages, {size / 1e6:.1f} MB in {took:.2f} s = "
              f"{count / took:.0f} msg/s; stored {result.counts.stored}; "
              f"store {(root / 's.db').stat().st_size / 1e6:.1f} MB")


def fill_generated(n: int):
    def fill(spool: Path) -> tuple[int, int]:
        size = 0
        for i in range(n):
            raw = generated(i)
            size += len(raw)
            deliver(spool, f"{i:08d}.bench", raw)
        return n, size
    return fill


def fill_corpus(spool: Path) -> tuple[int, int]:
    files = sorted(CORPUS.glob("*.eml"))
    for p in files:
        shutil.copyfile(p, spool / "new" / p.name)
    return len(files), sum(p.stat().st_size for p in files)


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    run("generated", fill_generated(n))
    if CORPUS.is_dir():
        run("zammad corpus", fill_corpus)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS: {peak:.0f} MB")
