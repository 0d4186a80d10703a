"""Time and peak memory to parse and store one 30 MB message (a 21 MB PDF attachment plus
text and HTML bodies). Prints figures; asserts nothing.

    python benchmarks/bench_parse_large.py
"""

from __future__ import annotations

import base64
import os
import resource
import tempfile
import time
from pathlib import Path

from mailbridge.config.load import validate
from mailbridge.connectors.drop import deliver, make_spool
from mailbridge.domain.parse import parse
from mailbridge.pipeline.report import NullReporter
from mailbridge.services.sync import sync


def big_message() -> bytes:
    payload = base64.encodebytes(os.urandom(21 * 1024 * 1024)).replace(b"\n", b"\r\n")
    html = b"<p>" + b"Report line with some text. " * 20 + b"</p>\r\n"
    return (b"From: a@example.com\r\nSubject: big\r\nMessage-ID: <big@bench>\r\n"
            b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
            b"--b\r\nContent-Type: multipart/alternative; boundary=a\r\n\r\n"
            b"--a\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + b"Some text.\r\n" * 20000
            + b"--a\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + html * 2000
            + b"--a--\r\n--b\r\nContent-Type: application/pdf; name=big.pdf\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n" + payload + b"--b--\r\n")


def main() -> None:
    raw = big_message()
    start = time.perf_counter()
    parse(raw)
    parsed_in = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_spool(root / "spool")
        deliver(root / "spool", "big", raw)
        config = validate({"store": {"path": str(root / "s.db")}, "channel": [
            {"name": "bench", "incoming": {"type": "drop", "spool": str(root / "spool")}}]},
            root / "c.toml")
        start = time.perf_counter()
        sync(config, [], NullReporter())
        synced_in = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"30 MB message: {len(raw) / 1e6:.1f} MB, parse {parsed_in:.2f} s, "
          f"sync into a new store {synced_in:.2f} s, peak RSS {peak:.0f} MB")


if __name__ == "__main__":
    main()
