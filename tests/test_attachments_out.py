"""Attachments out (issue 20): `tickets attachments ID` lists them, `--save DIR` writes them
byte for byte under safe names, never over a file without --force; `tickets show --html`
writes the HTML part. Hostile names come from a message made here; real-world attachments
from the shared corpora."""

from __future__ import annotations

import base64
import email
import hashlib
import json
import shutil
from email import policy
from pathlib import Path

import pytest
from conftest import CORPUS, drop, needs_corpus

from mailbridge.domain.filenames import NAME_BYTES, numbered, safe_filename

HOSTILE = [  # (filename parameter as written in the mail, the name it is saved under)
    ('"../../etc/passwd"', "passwd"),
    ('"' + "a" * 300 + '.pdf"', "a" * (NAME_BYTES - 4) + ".pdf"),
    ("*=utf-8''evil%00name.txt", "evil name.txt"),  # the parser makes NUL and CR LF spaces
    ("*=utf-8''two%0Alines%0D.txt", "two lines .txt"),
    ('".."', "attachment-1-5"),
    ('"report.pdf"', "report.pdf"),
    ('"REPORT.pdf"', "REPORT (2).pdf"),  # the same name to a file system that folds case
    ("*=utf-8''invoice%E2%80%AEfdp.exe", "invoicefdp.exe"),  # a bidi override
    ('".bashrc"', "bashrc"),
    ('"C:\\\\Windows\\\\evil.bat"', "evil.bat"),
    ('"CON.txt"', "_CON.txt"),
    ("*=utf-8''%1B]0%3Bpwned%07title.txt", "]0;pwned title.txt"),  # a terminal escape
]


def hostile_mail() -> tuple[bytes, list[bytes]]:
    contents = [f"content {i}\n".encode() + bytes(range(256)) for i in range(len(HOSTILE))]
    parts = [
        "From: Ann <ann@customer.example>\nTo: support@example.com\nSubject: Files\n"
        "Message-ID: <files@customer.example>\nMIME-Version: 1.0\n"
        'Content-Type: multipart/mixed; boundary="b"\n\n--b\n'
        "Content-Type: multipart/alternative; boundary=\"alt\"\n\n--alt\n"
        "Content-Type: text/plain; charset=utf-8\n\nSee the files.\n--alt\n"
        "Content-Type: text/html; charset=utf-8\n\n"
        "<p>See <b>the files</b>.\x1b]0;pwned\x07</p>\n--alt--\n"]
    for (name, _), data in zip(HOSTILE, contents, strict=True):
        parts.append(f"--b\nContent-Type: application/octet-stream\n"
                     f"Content-Disposition: attachment; filename{'' if name[0] == '*' else '='}"
                     f"{name}\nContent-Transfer-Encoding: base64\n\n"
                     f"{base64.encodebytes(data).decode()}")
    return ("".join(parts) + "--b--\n").encode(), contents


def ok(result):
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture
def files_ticket(mb) -> list[bytes]:
    raw, contents = hostile_mail()
    drop(mb.drop_channel(), raw)
    ok(mb("sync"))
    return contents


def test_hostile_names_are_saved_safely_and_byte_identical(mb, files_ticket, tmp_path):
    listed = json.loads(ok(mb("tickets", "attachments", "1", "--format", "json")).stdout)
    assert len(listed) == len(HOSTILE)
    assert set(listed[0]) == {"message", "filename", "content_type", "size", "inline", "sha256"}
    assert listed[0]["filename"] == "../../etc/passwd"  # listed as the mail names it

    out = tmp_path / "out"
    saved = json.loads(ok(mb("tickets", "attachments", "1", "--save", str(out),
                             "--format", "json")).stdout)
    assert [Path(s["saved_as"]).name for s in saved] == [name for _, name in HOSTILE]
    assert sorted(p.name for p in out.iterdir()) == sorted(name for _, name in HOSTILE)
    for row, data in zip(saved, files_ticket, strict=True):
        path = Path(row["saved_as"])
        assert path.parent == out and len(path.name.encode()) <= NAME_BYTES
        assert path.read_bytes() == data
    assert not (tmp_path / "etc").exists()


def test_no_file_is_replaced_without_force(mb, files_ticket, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "passwd").write_bytes(b"mine")
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"untouched")
    (out / "report.pdf").symlink_to(outside)

    refused = mb("tickets", "attachments", "1", "--save", str(out))
    assert refused.exit_code == 2
    assert "passwd, report.pdf already there; nothing was saved" in refused.stderr
    assert "--force" in refused.stderr
    assert sorted(p.name for p in out.iterdir()) == ["passwd", "report.pdf"]
    assert (out / "passwd").read_bytes() == b"mine"

    ok(mb("tickets", "attachments", "1", "--save", str(out), "--force"))
    assert (out / "passwd").read_bytes() == files_ticket[0]
    assert not (out / "report.pdf").is_symlink()  # the link is replaced, not written through
    assert (out / "report.pdf").read_bytes() == files_ticket[5]
    assert outside.read_bytes() == b"untouched"


def test_only_saves_the_attachments_of_one_name(mb, files_ticket, tmp_path):
    out = tmp_path / "one"
    ok(mb("tickets", "attachments", "1", "--save", str(out), "--only", "report.PDF"))
    # both of that name (ignoring case), numbered
    assert sorted(p.name for p in out.iterdir()) == ["REPORT (2).pdf", "report.pdf"]
    missing = mb("tickets", "attachments", "1", "--save", str(out), "--only", "reprot.pdf")
    assert missing.exit_code == 2
    assert 'no attachment called reprot.pdf; did you mean "' in missing.stderr
    alone = mb("tickets", "attachments", "1", "--only", "report.pdf")
    assert alone.exit_code == 2 and "--only and --force go with --save DIR" in alone.stderr
    nothing = mb("tickets", "attachments", "9")
    assert nothing.exit_code == 2 and "no ticket #9" in nothing.stderr


def test_show_html_writes_the_html_part_and_a_terminal_never_gets_its_escapes(
        mb, files_ticket, monkeypatch):
    piped = ok(mb("tickets", "show", "1", "--html"))
    assert piped.stdout == "<p>See <b>the files</b>.\x1b]0;pwned\x07</p>"  # as stored

    from mailbridge.cli import pager

    monkeypatch.setattr(pager, "to_terminal", lambda: True)
    shown = ok(mb("tickets", "show", "1", "--html"))
    assert "\x1b" not in shown.stdout and "\x07" not in shown.stdout
    assert "<p>See <b>the files</b>.\\x1b]0;pwned\\x07</p>" in shown.stdout


def test_a_ticket_without_html_or_attachments_says_so(mb):
    drop(mb.drop_channel(), b"From: a@customer.example\nSubject: Plain\n\nJust text.\n")
    ok(mb("sync"))
    html = mb("tickets", "show", "1", "--html")
    assert html.exit_code == 2 and "ticket #1 has no HTML part" in html.stderr
    assert ok(mb("tickets", "attachments", "1", "--format", "json")).stdout == "[]\n"
    save = mb("tickets", "attachments", "1", "--save", "x")
    assert save.exit_code == 2 and "ticket #1 has no attachments" in save.stderr


@pytest.mark.parametrize(("name", "safe"), [
    ("../../etc/passwd", "passwd"),
    ("..\\..\\boot.ini", "boot.ini"),
    ("..", "attachment"),
    ("", "attachment"),
    ("   ", "attachment"),
    ("/", "attachment"),
    ("a\x00b\nc\r\x7f\x9b.txt", "abc.txt"),
    ("x\u2028y\u200b.txt", "xy.txt"),  # a line separator, a zero-width space
    ("bad\udcff.txt", "bad.txt"),  # a lone surrogate (undecodable bytes) cannot be written
    ("nul.tar.gz", "_nul.tar.gz"),
    ("a<b>c:d|e?f*.txt", "a_b_c_d_e_f_.txt"),
    ("trailing. . ", "trailing"),
])
def test_safe_filename(name, safe):
    assert safe_filename(name) == safe


def test_long_names_are_cut_on_a_character_keeping_the_extension():
    name = safe_filename("я" * 300 + ".docx")
    assert name.endswith(".docx") and len(name.encode()) <= NAME_BYTES
    assert name.removesuffix(".docx") == "я" * ((NAME_BYTES - 5) // 2)
    long_ext = safe_filename("b" * 300 + "." + "c" * 40)  # not an extension: cut as a whole
    assert len(long_ext.encode()) == NAME_BYTES
    assert numbered("report.pdf", 2) == "report (2).pdf" and numbered("README", 3) == "README (3)"


@needs_corpus
def test_corpus_attachments_come_out_byte_identical(mb, tmp_path):
    """Every attachment of the corpora's mail, saved, is the attachment: its digest is the one
    taken when it was stored, and (apart from two that the standard library cannot decode
    the way a mail client does) the bytes Python's email package decodes from that part."""
    spool = mb.drop_channel()
    for path in sorted(CORPUS.rglob("*.eml")):
        if b"attachment" in path.read_bytes().lower() or b"name=" in path.read_bytes():
            shutil.copyfile(path, spool / "new" / f"{path.parent.parent.name}-{path.name}")
    ok(mb("sync"))
    tickets = [t for (t,) in mb.query("SELECT DISTINCT tm.ticket FROM ticket_messages tm JOIN "
                                      "attachments a ON a.message = tm.message ORDER BY 1")]
    assert len(tickets) >= 60
    names = dict(mb.query("SELECT m.id, l.source_key FROM messages m JOIN ledger l "
                          "ON l.message = m.id"))
    raws = mb.raws()
    saved_count, differ = 0, set()
    for ticket in tickets:
        out = tmp_path / f"t{ticket}"
        rows = json.loads(ok(mb("tickets", "attachments", str(ticket), "--save", str(out),
                                "--format", "json")).stdout)
        for row in rows:
            data = Path(row["saved_as"]).read_bytes()
            assert hashlib.sha256(data).hexdigest() == row["sha256"]
            assert len(data) == row["size"]
            saved_count += 1
            if row["content_type"].startswith("message/"):
                continue  # a mail in a mail is saved as its source; email decodes it to a tree
            raw = raws[row["message"]]
            reference = {part.get_payload(decode=True) for part in
                         email.message_from_bytes(raw, policy=policy.compat32).walk()
                         if not part.is_multipart()}
            if data not in reference:
                differ.add(names[row["message"]])
    print(f"corpus: {saved_count} attachments of {len(tickets)} tickets saved")
    assert saved_count >= 120
    # x-uuencode inside a MIME part, and a part whose base64 the library reads differently
    assert differ <= {"zammad-mail078-content_transfer_encoding_x_uuencode.eml",
                      "zammad-mail062.eml"}


def test_an_attachment_that_no_longer_reads_as_stored_is_not_saved(mb, files_ticket, tmp_path):
    """The bytes are decoded anew from the raw message; should they differ from the digest
    taken at storing (a parser changed since), nothing wrong is written."""
    mb.write("UPDATE attachments SET sha256 = 'changed' WHERE position = 5")
    result = mb("tickets", "attachments", "1", "--save", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert "its attachments no longer read as they were stored" in result.stderr
    assert "reprocess" in result.stderr
    assert not (tmp_path / "out").exists()
