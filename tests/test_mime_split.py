"""The MIME splitter (domain/mime_split.py, issue 23): wherever it gives a message tree, the
tree is the one the stdlib's FeedParser makes of the same text; it gives one for plain mail
(or parsing would not be faster); and it gives None for what it does not follow."""

from __future__ import annotations

from email.feedparser import FeedParser
from email.message import Message

import pytest
from conftest import CORPUS, needs_corpus
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbridge.domain import parse as parse_module
from mailbridge.domain.mime_split import MAX_DEPTH, split

POLICY = parse_module._POLICY


def stdlib(text: str) -> Message:
    """The stdlib's tree, fed as parse.py feeds it (in pieces; a review also compared with
    an unpatched copy of the stdlib's parser, fed whole and in pieces of 7 characters)."""
    parser = FeedParser(policy=POLICY)
    for start in range(0, len(text), 8192):
        parser.feed(text[start:start + 8192])
    return parser.close()


def difference(got: Message, want: Message, where: str = "message") -> str | None:
    """Where two trees differ (every attribute, payloads and defects included), or None."""
    mine, theirs = dict(vars(got)), dict(vars(want))
    for tree in (mine, theirs):
        tree.pop("policy")
        tree["defects"] = [(type(d), str(d)) for d in tree["defects"]]
    if mine.keys() != theirs.keys():
        return f"{where}: attributes {sorted(mine.keys() ^ theirs.keys())}"
    for key, value in mine.items():
        other = theirs[key]
        if key == "_payload" and isinstance(value, list):
            if not isinstance(other, list) or len(value) != len(other):
                return f"{where}: parts {value!r:.80} != {other!r:.80}"
            for index, (a, b) in enumerate(zip(value, other, strict=True)):
                if (found := difference(a, b, f"{where}/{index}")) is not None:
                    return found
        elif value != other:
            return f"{where}: {key} {value!r:.200} != {other!r:.200}"
    return None


def same_tree(text: str) -> Message | None:
    got = split(text, POLICY)
    if got is not None:
        assert difference(got, stdlib(text)) is None, text
    return got


def headers(ctype: str, extra: str = "") -> str:
    return f"Content-Type: {ctype}\n{extra}"


PLAIN = ("From: Ann <ann@example.com>\nTo: support@example.com\nSubject: Help\n"
         " with folding\nMIME-Version: 1.0\n")


def multipart(boundary: str, parts: list[str], preamble: str = "", epilogue: str = "",
              subtype: str = "mixed") -> str:
    body = "".join(f"--{boundary}\n{part}\n" for part in parts)
    return (f'Content-Type: multipart/{subtype}; boundary="{boundary}"\n\n'
            f"{preamble}{body}--{boundary}--\n{epilogue}")


LEAF = "Content-Type: text/plain; charset=utf-8\n\nHello\n\nbye\n"
HTML = "Content-Type: text/html\n\n<p>Hi</p>"


@pytest.mark.parametrize("text", [
    PLAIN + "\nHello\n",
    PLAIN + multipart("b1", [LEAF, HTML]),
    PLAIN + multipart("b1", [LEAF], preamble="This is MIME.\n", epilogue="after\n\n"),
    PLAIN + multipart("b1", [multipart("b2", [LEAF, HTML], epilogue="inner\n"), LEAF]),
    PLAIN + multipart("b1", [multipart("b2", [LEAF], subtype="alternative"), HTML]),
    PLAIN + multipart("b", ["Content-Type: text/plain\n\n--b2 is not it\n--bx\n-- b\nnot --b\n",
                            LEAF]),
    PLAIN + multipart("b", [LEAF, "Content-Type: message/rfc822\n\n" + PLAIN + "\nold\n"]),
    PLAIN + multipart("b", ["Content-Type: message/rfc822\n\n" + PLAIN + multipart(
        "c", [LEAF, HTML]), LEAF]),
    PLAIN + multipart("b", ["\nno headers at all\n"]),
    (PLAIN + multipart("b", [LEAF, HTML])).replace("\n", "\r\n"),
    PLAIN + multipart("b", [LEAF]).replace("--b\n", "--b \t\n"),
    PLAIN + "Content-Type: message/rfc822\n\n" + PLAIN + "\nforwarded\n",
], ids=["leaf", "multipart", "preamble-epilogue", "nested", "nested-last", "not-boundaries",
        "enclosed", "enclosed-multipart", "part-without-headers", "crlf", "boundary-space",
        "message"])
def test_plain_mail_is_split_into_the_stdlibs_tree(text: str) -> None:
    assert same_tree(text) is not None


def nested(depth: int) -> str:
    text = LEAF
    for level in range(depth):
        text = multipart(f"level{level}", [text])
    return PLAIN + text


@pytest.mark.parametrize("text", [
    PLAIN + "\nbare\rCR\n",
    "From ann@example.com Mon Nov 16 09:00:00 2026\n" + PLAIN + "\nbody\n",
    PLAIN + "not a header line\n\nbody\n",
    " folded first\n" + PLAIN + "\nbody\n",
    PLAIN + multipart("b", [LEAF]).removesuffix("--b--\n"),  # never closed
    PLAIN + multipart("b", [LEAF]).replace("--b\n", "--c\n"),  # never opened
    PLAIN + multipart("b", [LEAF, LEAF]).replace("--b\nContent", "--b\n--b\nContent", 1),
    PLAIN + multipart("b", [LEAF], subtype="digest"),
    PLAIN + multipart("b", ["Content-Type: message/delivery-status\n\nStatus: 5.0.0\n"]),
    PLAIN + "Content-Type: multipart/mixed\n\nno boundary\n",
    PLAIN + multipart("b", [LEAF]).replace("mixed;", "mixed; x=1;").replace(
        "\n\n", "\nContent-Transfer-Encoding: base64\n\n", 1),
    PLAIN + multipart("b", ["Content-Type: text/plain\n" + "X: headers only"]),
    PLAIN + multipart("b", [multipart("c", [LEAF]).removesuffix("--c--\n")]),  # inner open
    nested(MAX_DEPTH + 1),
], ids=["bare-cr", "envelope-from", "broken-header", "continuation-first", "not-closed",
        "not-opened", "two-boundaries", "digest", "delivery-status", "no-boundary",
        "encoded-multipart", "headers-only-part", "inner-not-closed", "too-deep"])
def test_what_the_splitter_does_not_follow_is_left_to_the_stdlib(text: str) -> None:
    assert split(text, POLICY) is None


def test_nesting_up_to_the_limit_is_split() -> None:
    assert same_tree(nested(MAX_DEPTH - 1)) is not None


# Pieces a MIME text is made of, boundaries and near-boundaries included: any text made of
# them either splits into the stdlib's tree or is left to the stdlib.
_LINES = st.sampled_from([
    "From: a@b.c", "Subject: x", " folded", "\tfolded", "Content-Type: text/plain",
    'Content-Type: multipart/mixed; boundary="b"', 'Content-Type: multipart/alternative; '
    'boundary="c"', "Content-Type: message/rfc822", "Content-Type: multipart/digest; "
    'boundary="b"', "Content-Transfer-Encoding: base64", "--b", "--b--", "--c", "--c--",
    "--b  ", "--bb", "x--b", "x --b--", "--b--x", "--", "", "", "", "text", "From x", ":x", "x y",
    "\r", "--c \t",
])


@settings(max_examples=1500, deadline=None)
@given(lines=st.lists(_LINES, max_size=40), crlf=st.booleans(), tail=st.booleans())
def test_any_text_of_mime_pieces_splits_as_the_stdlib_does(lines: list[str], crlf: bool,
                                                         tail: bool) -> None:
    eol = "\r\n" if crlf else "\n"
    text = "From: a@b.c\n".replace("\n", eol) + eol.join(lines) + (eol if tail else "")
    same_tree(text)


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(st.sampled_from([LEAF, HTML, "\nbare\n", "X: y\n\n--b2x\n"]),
                      min_size=1, max_size=4),
       preamble=st.sampled_from(["", "pre\n", "pre\n\n"]),
       epilogue=st.sampled_from(["", "\n", "post\n", "post"]), crlf=st.booleans(),
       inner=st.booleans())
def test_well_formed_multiparts_split_as_the_stdlib_does(parts: list[str], preamble: str,
                                                         epilogue: str, crlf: bool,
                                                         inner: bool) -> None:
    if inner:
        parts = [multipart("b2", parts, preamble, epilogue), *parts]
    text = PLAIN + multipart("b", parts, preamble, epilogue)
    assert same_tree(text.replace("\n", "\r\n") if crlf else text) is not None


@needs_corpus
def test_corpus_mail_splits_as_the_stdlib_does() -> None:
    split_count = 0
    for path in sorted(CORPUS.rglob("*.eml")):
        text = path.read_bytes().decode("ascii", "surrogateescape")
        if same_tree(text) is not None:
            split_count += 1
    assert split_count >= 100  # (about half: the rest is what the corpora were chosen for)
