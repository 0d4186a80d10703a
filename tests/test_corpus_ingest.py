"""Acceptance: all 106 Zammad corpus mails go through a drop channel; every file is in the
ledger, every stored message keeps its raw bytes exactly; subject and sender agree with
Zammad's expectations often enough."""

from __future__ import annotations

import json
import shutil
import sqlite3

import pytest
from conftest import CORPUS

ZAMMAD = CORPUS / "zammad"

pytestmark = pytest.mark.skipif(not ZAMMAD.is_dir(), reason=f"corpus not found at {ZAMMAD}")


def test_zammad_corpus_ingests_through_the_drop_channel(mb):
    spool = mb.drop_channel()
    files = sorted((ZAMMAD / "mail").glob("*.eml"))
    assert len(files) == 106
    for path in files:
        shutil.copyfile(path, spool / "new" / path.name)
    result = mb("sync")
    assert "Traceback" not in result.stderr
    assert result.exit_code == 0, result.stderr
    expected = json.loads((ZAMMAD / "expected.json").read_text())
    with sqlite3.connect(mb.store) as conn:
        rows = conn.execute(
            "SELECT l.source_key, m.id, m.raw, m.subject, m.from_email, m.parse_error "
            "FROM ledger l JOIN messages m ON m.id = l.message").fetchall()
    # The corpus holds the same mail (same Message-ID, sender and Date) in several variants:
    # every file is in the ledger, each variant group is one message whose raw is one of them.
    assert len(rows) == 106
    groups: dict[int, list[str]] = {}
    for key, message, *_ in rows:
        groups.setdefault(message, []).append(key)
    by_name = {r[0]: r for r in rows}
    subjects = senders = 0
    for names in groups.values():
        first = min(names)  # files were ingested in sorted order: the first variant is kept
        _, _, raw, subject, sender, error = by_name[first]
        assert bytes(raw) == (ZAMMAD / "mail" / first).read_bytes(), first
        assert error is None, (first, error)
        exp = expected[first]
        subjects += (subject.strip() or None) == ((exp.get("subject") or "").strip() or None)
        senders += sender.strip() == (exp.get("from_email") or "").strip()
    total = len(groups)
    print(f"zammad via drop channel: 106 files, {total} messages, "
          f"subject {subjects}/{total}, sender {senders}/{total}")
    assert total >= 80
    assert subjects >= total - 3
    assert senders >= total - 6
    assert not list((spool / "new").iterdir())
