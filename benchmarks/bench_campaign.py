"""`campaigns send` and the campaign pace on a SQLite store (prints figures; asserts nothing).

* queueing: `mailbridge campaigns send` of N contacts from a CSV, as a process of its own
  (compose, store the copy, queue the outbox row, one transaction per 20 recipients); the
  wall time and the time per recipient. Nothing is sent: the sales channel's SMTP is never
  reached.
* the pace check: what the drain asks before each campaign row it claims (how much each
  mailbox sent in the last minute and day), against an outbox with H rows of older history.

Run:

    python benchmarks/bench_campaign.py [--contacts 2000] [--history 100000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import tomli_w

from mailbridge.config.model import StoreSettings
from mailbridge.store import outbox
from mailbridge.store.backends import backend


def queueing(root: Path, contacts: int) -> None:
    config = root / "config.toml"
    config.write_text(tomli_w.dumps({"store": {"path": str(root / "mb.db")}, "channel": [{
        "name": "sales", "mode": "sales", "owner": "anna@us.test", "agent": "Anna",
        "incoming": {"type": "drop", "spool": str(root / "spool")},
        "outgoing": {"type": "smtp", "host": "127.0.0.1", "port": 9, "security": "none"}}]}))
    (root / "leads.csv").write_text("email,name,client\n" + "".join(
        f"buyer{i}@acme.test,Buyer {i},ACME\n" for i in range(contacts)))
    (root / "offer.txt").write_text("Dear {name},\n\nour spring offer for {client}.\n")
    mb = [sys.executable, "-m", "mailbridge", "--config", str(config)]
    subprocess.run([*mb, "agents", "add", "Anna", "--email", "anna@us.test"], check=True,
                   capture_output=True, timeout=60)
    start = time.perf_counter()
    subprocess.run([*mb, "campaigns", "send", "--subject", "Offer", "--body-file",
                    str(root / "offer.txt"), "--contacts", str(root / "leads.csv"), "--as",
                    "Anna"], check=True, capture_output=True, timeout=3600)
    took = time.perf_counter() - start
    print(f"campaigns send, {contacts} contacts: {took:.2f} s "
          f"({took / contacts * 1000:.2f} ms a recipient, process start included)")


def pace_check(root: Path, history: int) -> None:
    db = backend(StoreSettings.sqlite(root / "pace.db")).connect()
    old = (datetime.now(UTC) - timedelta(days=30)).isoformat(timespec="seconds")
    with db.atomic():
        db.executemany(
            "INSERT INTO outbox (channel, kind, envelope_from, recipients_json, raw, state, "
            "created_at, updated_at, sent_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [("sales", "reply", f"agent{i % 50}@us.test", "[]", b"x", "sent", old, old, old)
             for i in range(history)])
    rounds = 200
    start = time.perf_counter()
    for _ in range(rounds):
        outbox.busy_senders(db, 30, 10_000)
    each = (time.perf_counter() - start) / rounds
    print(f"pace check, {history} older outbox rows: {each * 1000:.3f} ms a claimed row")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=2000)
    parser.add_argument("--history", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "spool").mkdir()
        queueing(Path(tmp), args.contacts)
        pace_check(Path(tmp), args.history)


if __name__ == "__main__":
    main()
