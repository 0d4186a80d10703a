"""What the show pages (`tickets show`, `messages show`) share: a stored message as a
person reads it, and the stored raw bytes."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from email.utils import format_datetime

from mailbridge.cli.terminal import print_line, print_text


def write_raw(blobs: list[bytes]) -> None:
    """Stored raw mail on stdout: one message as it is, several as an mbox."""
    out = sys.stdout.buffer
    stamp = format_datetime(datetime.now(UTC)).replace(",", "")
    for blob in blobs:
        if len(blobs) > 1:
            out.write(f"From mailbridge {stamp}\n".encode())
        out.write(blob)
        if len(blobs) > 1:
            out.write(b"\n")
    out.flush()


def echo_message(m: dict) -> None:
    """A stored message as the show pages print it: headers, attachments, text."""
    print_line("")
    print_line(f"--- message {m['id']} ({m['classification'] or 'unparsed'}) "
               f"{m['sent_at'] or m['stored_at']}")
    sender = f"{m['from_name']} <{m['from_email']}>" if m["from_name"] else m["from_email"]
    print_line(f"From: {sender}")
    print_line("To: " + ", ".join(a["email"] for a in m["to"]))
    if m.get("cc"):
        print_line("Cc: " + ", ".join(a["email"] for a in m["cc"]))
    print_line(f"Subject: {m['subject']}")
    for a in m["attachments"]:
        print_line(f"Attachment: {a['filename']} ({a['content_type']}, {a['size']} bytes)")
    print_line("")
    print_text(m["text"].rstrip() if m["text"] else f"(no text: {m['parse_error'] or ''})")
