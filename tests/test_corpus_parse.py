import json

from conftest import CORPUS, needs_corpus

from mailbridge.domain.parse import ParsedMessage, parse

pytestmark = needs_corpus

# more/expected.json records the stdlib's answers; where its README says a good parser may
# rightly differ, these are ours.
MORE_SUBJECTS = {
    "flanker-mailformed-headers.eml": "´!",  # raw 0xB4 byte: cp1252, not U+FFFD
    "flanker-spam-broken-headers.eml": "Forget Asking For A Link Exchange…",  # raw cp1252 0x85
    "mailparser-mail_test_9.eml":  # labelled gb2312 but GBK: decoded whole, no U+FFFD
        "我把镜头拉近些，你们看看这个是什么屄，这种场合自然少不了内射",
}
MORE_SENDERS = {
    "cpython-msg_43.eml": "",  # `MAILER DAEMON <>`: the stdlib renders the empty address as <>
    "mailparser-mail_test_15.eml": "do-not-reply@ncs.gov.ng",  # the <...> address, not the name
    "mailparser-mail_test_19.eml": "bob@example.com",
}


def _sender_email(msg: ParsedMessage) -> str | None:
    return msg.sender.email.strip() if msg.sender else None


def test_zammad_corpus_subjects_and_senders() -> None:
    expected = json.loads((CORPUS / "zammad" / "expected.json").read_text(encoding="utf-8"))
    files = sorted((CORPUS / "zammad" / "mail").glob("*.eml"))
    assert len(files) == 106
    subject_ok, from_ok, misses = 0, 0, []
    for path in files:
        msg = parse(path.read_bytes())
        want = expected[path.name]
        if msg.subject.strip() == (want["subject"] or "").strip():
            subject_ok += 1
        else:
            misses.append(f"{path.name} subject {msg.subject!r} != {want['subject']!r}")
        if _sender_email(msg) == want["from_email"].strip():
            from_ok += 1
        else:
            misses.append(f"{path.name} from {_sender_email(msg)!r} != {want['from_email']!r}")
    print(f"zammad: subject {subject_ok}/106, from_email {from_ok}/106")
    assert subject_ok >= 103, misses
    assert from_ok >= 100, misses


def test_more_corpus_parses_and_agrees_with_the_stdlib_where_it_is_right() -> None:
    expected = json.loads((CORPUS / "more" / "expected.json").read_text(encoding="utf-8"))
    files = sorted((CORPUS / "more" / "mail").glob("*.eml"))
    assert len(files) == len(expected)
    subject_ok = from_ok = 0
    for path in files:
        msg = parse(path.read_bytes())
        want = expected[path.name]
        subject = MORE_SUBJECTS.get(path.name, (want["subject"] or "").strip())
        sender = MORE_SENDERS.get(path.name, want["from_addr"])
        assert msg.subject == subject, path.name
        assert _sender_email(msg) == sender, path.name
        subject_ok += msg.subject == (want["subject"] or "").strip()
        from_ok += _sender_email(msg) == want["from_addr"]
    print(f"more: subject {subject_ok}/{len(files)}, from_email {from_ok}/{len(files)} "
          f"equal to the stdlib's")


def test_extra_fixtures_parse() -> None:
    for path in sorted((CORPUS / "zammad" / "extra").glob("*.eml")):
        msg = parse(path.read_bytes())
        assert msg.sender is not None and "@" in msg.sender.email, path.name


def test_attachments_measured_without_their_data_match_the_decoded_ones() -> None:
    """Ingest measures attachments without keeping their bytes (a base64 one is decoded a
    megabyte at a time): every corpus message must get the same names, sizes and hashes."""
    files = sorted(p for p in CORPUS.rglob("*") if p.is_file())
    compared = 0
    for path in files:
        raw = path.read_bytes()
        try:
            whole = parse(raw)
        except Exception:  # noqa: BLE001 - what does not parse is compared by the other tests
            continue
        slim = parse(raw, attachment_data=False)
        assert [(a.filename, a.content_type, a.size, a.sha256) for a in slim.attachments] == [
            (a.filename, a.content_type, a.size, a.sha256) for a in whole.attachments], path
        assert slim.text == whole.text and slim.defects == whole.defects, path
        compared += len(whole.attachments)
    assert compared > 100


def test_parameters_read_once_a_header_are_those_the_stdlib_reads_each_time() -> None:
    """domain/parse._param parses a header's parameters once for every name asked of it:
    for every part of every corpus mail, each name must come out as `get_param` gives it."""
    import email

    from mailbridge.domain.parse import _POLICY, _param

    asked = 0
    for path in sorted(CORPUS.glob("**/*.eml")):
        for part in email.message_from_bytes(path.read_bytes(), policy=_POLICY).walk():
            for name, header in (("charset", "content-type"), ("NAME", "content-type"),
                                 ("boundary", "content-type"), ("missing", "content-type"),
                                 ("filename", "content-disposition")):
                try:
                    want = part.get_param(name, None, header=header)
                except Exception:  # noqa: BLE001 - what _param turns into None
                    want = None
                assert _param(part, name, header) == want, (path.name, name)
                asked += 1
    assert asked > 5000
