"""Microsoft 365 (Graph) ingest against the local HTTPS fake in tests/servers/graph.py:
N unread messages in three folders of one mailbox (plus read mail that must be skipped),
synced as tickets and marked read, with `import_read` on. Then N/2 more arrive, half of them
already read in Outlook (found by the per-folder delta rounds), and a poll finds nothing.
Prints HTTP round trips per ingested message (the issue's target is at most 1.1), the Graph
requests inside `$batch`, the throughput, and what a poll costs. Asserts nothing.

    python benchmarks/bench_graph.py [N]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from servers.graph import GraphFake  # noqa: E402

from mailbridge.config.load import validate  # noqa: E402
from mailbridge.pipeline.report import NullReporter  # noqa: E402
from mailbridge.services.sync import sync  # noqa: E402


def generated(i: int) -> bytes:
    return (f"From: Customer {i} <c{i % 50}@bench.example>\nTo: support@contoso.com\n"
            f"Subject: Question number {i}\nMessage-ID: <g{i}@bench.example>\n"
            "Content-Type: text/plain; charset=utf-8\n\n" + "Some text of a message.\n" * 40
            ).encode()


def main(n: int) -> None:
    fake = GraphFake()
    fake.add_app("bench-app", "bench-secret")
    fake.add_mailbox("support@contoso.com")
    folders = ["inbox", fake.add_folder("support@contoso.com", "Orders"),
               fake.add_folder("support@contoso.com", "Returns")]
    for i in range(n):
        fake.deliver("support@contoso.com", generated(i), folder=folders[i % 3])
    for i in range(n // 4):
        fake.deliver("support@contoso.com", generated(n + i), is_read=True)
    os.environ["MB_BENCH_SECRET"] = "bench-secret"
    with tempfile.TemporaryDirectory() as tmp:
        config = validate({
            "store": {"path": str(Path(tmp) / "s.db")},
            "m365": [{"name": "bench", "tenant_id": fake.tenant, "client_id": "bench-app",
                      "client_secret": {"env": "MB_BENCH_SECRET"}, "authority_url": fake.url,
                      "graph_url": fake.url, "ca_bundle": str(fake.ca_file)}],
            "channel": [{"name": "bench", "incoming": {
                "type": "m365", "app": "bench", "mailboxes": ["support@contoso.com"],
                "import_read": True}}],
        }, Path(tmp) / "c.toml")
        first = phase(fake, config, f"{n} unread (+{n // 4} read) messages")
        for i in range(n // 2):
            fake.deliver("support@contoso.com", generated(2 * n + i), folder=folders[i % 3],
                         is_read=i % 2 == 0, received=datetime.now(UTC))
        second = phase(fake, config, f"{n // 2} new, half read in Outlook first")
        phase(fake, config, "a poll with nothing new")
    assert first and second
    fake.close()


def phase(fake: GraphFake, config, what: str) -> int:
    fake.log.clear()
    fake.batched.clear()
    start = time.perf_counter()
    run = sync(config, [], NullReporter())
    took = time.perf_counter() - start
    [result] = run.channels
    stored = result.counts.stored
    http = len(fake.log)
    graph_calls = len([1 for _, p in fake.log if p.startswith("/v1.0")])
    print(f"graph: {what}: stored {stored}, "
          f"{len(fake.unread('support@contoso.com'))} left unread, in {took:.2f} s = "
          f"{stored / took:.0f} msg/s")
    print(f"  HTTP round trips: {http} ({graph_calls} to Graph, {http - graph_calls} to the "
          f"identity platform) = {http / max(stored, 1):.3f} per message")
    print(f"  Graph requests inside $batch: {len(fake.batched)} = "
          f"{len(fake.batched) / max(stored, 1):.2f} per message")
    return stored


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3000)
