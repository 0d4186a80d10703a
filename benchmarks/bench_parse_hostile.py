"""Parse time of hostile HTML mail (issue 17's shapes: long runs of block tags, deep nesting)
and of other shapes that stress the parser. Prints one line per shape; asserts nothing.

    python benchmarks/bench_parse_hostile.py [SHAPE…]      # default: every shape
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from mailbridge.domain.parse import parse


def html_mail(html: bytes) -> bytes:
    return (b"From: a@example.com\r\nTo: s@example.com\r\nSubject: hostile\r\n"
            b"Content-Type: text/html; charset=utf-8\r\n\r\n" + html)


def multipart(parts: int, nested: bool) -> bytes:
    """`parts` text parts side by side, or each one multipart deeper than the last."""
    if not nested:
        body = b"".join(b"--b\r\nContent-Type: text/plain\r\n\r\npart\r\n" for _ in range(parts))
        return (b"From: a@example.com\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
                + body + b"--b--\r\n")
    opening = b"".join(b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n"
                       % (i, i + 1) for i in range(parts))
    closing = b"".join(b"--b%d--\r\n" % i for i in reversed(range(parts)))
    return (b"From: a@example.com\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n"
            + opening + b"--b%d\r\n\r\ninnermost\r\n--b%d--\r\n" % (parts, parts) + closing)


def attachments(count: int) -> bytes:
    body = b"".join(b"--b\r\nContent-Type: application/octet-stream; name=f%d.bin\r\n"
                    b"Content-Transfer-Encoding: base64\r\n\r\nAAAA\r\n" % i
                    for i in range(count))
    return (b"From: a@example.com\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
            + body + b"--b--\r\n")


SHAPES: dict[str, Callable[[], bytes]] = {
    "div-550k": lambda: html_mail(b"<div>" * 110_000),
    "div-1.1m": lambda: html_mail(b"<div>" * 220_000),
    "br-400k": lambda: html_mail(b"<br>" * 100_000),
    "nested-div-11m": lambda: html_mail(b"<div>" * 1_000_000 + b"x" + b"</div>" * 1_000_000),
    "p-br-mix-1m": lambda: html_mail(b"<p> <br> <div> " * 70_000),
    "open-tags-1m": lambda: html_mail(b"<a href=x" * 100_000),
    "open-comment-1m": lambda: html_mail(b"<!--<!--" * 130_000),
    "links-1m": lambda: html_mail(b"<a href='u'>" * 85_000),
    "header-line-1m": lambda: b"Subject: " + b"x" * 1_000_000 + b"\r\nFrom: a@b\r\n\r\nhi\r\n",
    "header-folds-1m": lambda: b"Subject: x" + b"\r\n y" * 250_000 + b"\r\nFrom: a@b\r\n\r\nhi\r\n",
    "many-headers-1m": lambda: b"X-A: b\r\n" * 125_000 + b"From: a@b\r\n\r\nhi\r\n",
    "addresses-1m": lambda: b"To: " + b"a@b.example, " * 80_000 + b"\r\nFrom: a@b\r\n\r\nx\r\n",
    "multipart-10k-parts": lambda: multipart(10_000, nested=False),
    "multipart-nested-2k": lambda: multipart(2_000, nested=True),
    "attachments-10k": lambda: attachments(10_000),
    # A separator many times in a line: only one at a line's start can be a boundary.
    "separators-in-a-line-1m": lambda: (
        b"From: a@example.com\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\n"
        + b"--b" * 330_000 + b"\r\n--b--\r\n"),
    "bare-cr-1m": lambda: b"From: a@b.example\rTo: s@x.example\r\r" + b"line\r" * 200_000,
}


def main(names: list[str]) -> None:
    for name in names or SHAPES:
        raw = SHAPES[name]()
        start = time.perf_counter()
        parse(raw)
        print(f"{name:22} {len(raw) / 1e6:6.2f} MB  parse {time.perf_counter() - start:7.2f} s",
              flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
