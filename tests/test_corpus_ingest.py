"""Acceptance: all 106 Zammad corpus mails go through a drop channel; every raw message is
stored byte for byte; subject and sender agree with Zammad's expectations often enough."""

from __future__ import annotations

import json
import shutil

from conftest import CORPUS, RAW, needs_corpus

ZAMMAD = CORPUS / "zammad"

pytestmark = needs_corpus


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
    rows = mb.query(f"SELECT l.source_key, {RAW}, m.subject, m.from_email, m.parse_error "
                    "FROM ledger l JOIN messages m ON m.id = l.message")
    assert len(rows) == 106
    by_name = {r[0]: r for r in rows}
    subjects = senders = 0
    for path in files:
        key, raw, subject, sender, error = by_name[path.name]
        assert bytes(raw) == path.read_bytes(), path.name
        assert error is None, (path.name, error)
        exp = expected[path.name]
        subjects += (subject.strip() or None) == ((exp.get("subject") or "").strip() or None)
        senders += sender.strip() == (exp.get("from_email") or "").strip()
    print(f"zammad via drop channel: 106 stored, subject {subjects}/106, sender {senders}/106")
    # variants of one mail share a Message-ID in this corpus: their content keeps them apart
    assert subjects >= 103
    assert senders >= 100
    assert not list((spool / "new").iterdir())
