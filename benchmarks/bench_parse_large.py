"""Time and peak memory to parse and to sync one large message (a PDF attachment plus text and
HTML bodies), by default 30 MB and 60 MB. Prints figures, and issue 23's memory bound (peak RSS
of every process at most twice the message plus 64 MB); asserts nothing.

    python benchmarks/bench_parse_large.py [MB…] [--imap]

Each figure comes from a fresh process: the parse as the API gives it (attachments decoded)
and as ingest does it (attachments measured without their data), and the sync (drop channel,
new store), which reports its own peak RSS and that of the parsing helper it started (a message
this large is parsed in one). `--imap` also syncs the message from a real Dovecot
(tests/servers/dovecot.py; Debian's dovecot-imapd), fetched in 1 MB partials.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Peak RSS as each process's own high-water mark (VmHWM): getrusage's ru_maxrss would carry
# over the peak of the process that started it (Linux keeps it across exec), here the
# benchmark's own, which built the message. The helper's is sampled while it lives.
PEAK = """
import os, threading

def peak_mb(pid="self"):
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0

helper_peak = 0.0

def _watch():
    global helper_peak
    while True:
        for task in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{task}/children") as children:
                    pids = children.read().split()
            except OSError:
                continue
            for pid in pids:
                try:  # until it has exec'd, a vforked child reports its parent's memory
                    with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                        if b"prepare_helper" not in cmdline.read():
                            continue
                except OSError:
                    continue
                helper_peak = max(helper_peak, peak_mb(pid))
        threading.Event().wait(0.01)

threading.Thread(target=_watch, daemon=True).start()
"""

SYNC = PEAK + """
import json, sys, time
from pathlib import Path
from mailbridge.config.load import validate
from mailbridge.pipeline.report import NullReporter
from mailbridge.services.sync import sync
root = Path(sys.argv[1])
config = validate({"store": {"path": str(root / "s.db")}, "channel": [
    {"name": "bench", "main_email": "support@example.com",
     "incoming": json.loads(sys.argv[2])}]}, root / "c.toml")
start = time.perf_counter()
result = sync(config, [], NullReporter())
print(json.dumps({"seconds": time.perf_counter() - start,
                  "stored": result.channels[0].counts.stored,
                  "main": peak_mb(), "helper": helper_peak}))
"""

PARSE = PEAK + """
import sys, time
from pathlib import Path
from mailbridge.domain.parse import parse
raw = Path(sys.argv[1]).read_bytes()
start = time.perf_counter()
parse(raw, attachment_data=sys.argv[2] == "data")
print(time.perf_counter() - start, peak_mb())
"""


def big_message(megabytes: int) -> bytes:
    """About `megabytes` MB: a base64 attachment of 70% of it, plus 1.4 MB of bodies."""
    attachment = int(megabytes * 0.7 * 1024 * 1024)
    payload = base64.encodebytes(os.urandom(attachment)).replace(b"\n", b"\r\n")
    html = b"<p>" + b"Report line with some text. " * 20 + b"</p>\r\n"
    return (b"From: a@example.com\r\nSubject: big\r\nMessage-ID: <big@bench>\r\n"
            b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
            b"--b\r\nContent-Type: multipart/alternative; boundary=a\r\n\r\n"
            b"--a\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + b"Some text.\r\n" * 20000
            + b"--a\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + html * 2000
            + b"--a--\r\n--b\r\nContent-Type: application/pdf; name=big.pdf\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n" + payload + b"--b--\r\n")


def measure(megabytes: int, dovecot: Any = None) -> None:
    from mailbridge.connectors.drop import deliver, make_spool

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        raw = big_message(megabytes)
        size = len(raw)
        make_spool(root / "spool")
        path = deliver(root / "spool", "big", raw)
        user = None
        if dovecot is not None:
            user = dovecot.add_user()
            dovecot.append(user.username, user.password, [raw])
        del raw
        parsed, measured = (subprocess.run(
            [sys.executable, "-c", PARSE, str(path), mode], check=True, capture_output=True,
            text=True).stdout.split() for mode in ("data", "measure"))
        print(f"{megabytes} MB case ({size / 1e6:.1f} MB): parse {float(parsed[0]):.2f} s "
              f"(peak RSS {float(parsed[1]):.0f} MB in-process; as ingest parses, attachments "
              f"measured: {float(measured[0]):.2f} s, {float(measured[1]):.0f} MB)", flush=True)
        sources = {"drop": ({"type": "drop", "spool": str(root / "spool")}, {})}
        if user is not None:
            sources["imap"] = ({"type": "imap", "host": user.host, "port": user.port,
                                "security": "none", "username": user.username,
                                "password": {"env": "MB_BENCH_PW"}, "max_message_mb": 100},
                               {"MB_BENCH_PW": user.password})
        for name, (incoming, env) in sources.items():
            store = root / name
            store.mkdir()
            synced = json.loads(subprocess.run(
                [sys.executable, "-c", SYNC, str(store), json.dumps(incoming)], check=True,
                capture_output=True, text=True, env={**os.environ, **env}).stdout)
            assert synced["stored"] == 1
            bound = 2 * size / 1048576 + 64
            worst = max(synced["main"], synced["helper"])
            print(f"  sync from {name} into a new store {synced['seconds']:.2f} s, peak RSS "
                  f"{synced['main']:.0f} MB main process, {synced['helper']:.0f} MB parsing "
                  f"helper; bound 2x size + 64 MB = {bound:.0f} MB: "
                  f"{'met' if worst <= bound else 'NOT met'}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Time and peak memory to parse and to sync one large message.")
    parser.add_argument("megabytes", nargs="*", type=int, default=[30, 60],
                        help="sizes of the message to measure, in MB (30 and 60)")
    parser.add_argument("--imap", action="store_true",
                        help="also sync the message from a real Dovecot (Debian's "
                             "dovecot-imapd)")
    args = parser.parse_args()
    dovecot = None
    if args.imap:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from servers.dovecot import Dovecot

        dovecot = Dovecot()
        dovecot.start()
    try:
        for megabytes in args.megabytes:
            started = time.perf_counter()
            measure(megabytes, dovecot)
            print(f"  (measured in {time.perf_counter() - started:.0f} s)", file=sys.stderr)
    finally:
        if dovecot is not None:
            dovecot.close()


if __name__ == "__main__":
    main()
