"""Raw RFC 5322 bytes in, a ParsedMessage out, repairing the damage real-world mail carries.

Pure and stdlib-only. `parse` raises ParseError only when there is nothing usable at all (empty
input, no header block); everything else is repaired and noted in `ParsedMessage.defects`.
The MIME structure is the stdlib parser's (compat32, which keeps raw header values): found by
`mime_split` for plain mail, by the stdlib itself for the rest. Header decoding, charset
guessing and address parsing are done here because the stdlib gives up, or guesses badly, on
exactly the mail a ticket system receives.
"""

from __future__ import annotations

import binascii
import codecs
import email.feedparser
import functools
import hashlib
import html as html_lib
import mimetypes
import re
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.feedparser import BufferedSubFile, FeedParser
from email.generator import BytesGenerator
from email.message import Message
from email.parser import BytesParser
from email.policy import Compat32
from email.utils import parsedate_to_datetime
from io import BytesIO

from mailbridge.domain import mime_split
from mailbridge.domain.message import Address, Attachment, ParsedMessage, ParseError

# --------------------------------------------------------------------------- charsets

# Labels seen in the wild that Python does not know, or knows under a narrower codec.
_LABEL_ALIASES = {
    "iso-gb2312": "gb18030",
    "x-gbk": "gb18030",
    "gb-2312": "gb18030",
    "windows-874": "cp874",
    "x-windows-874": "cp874",
    "iso-8859-8-i": "iso8859-8",
    "iso-8859-8-e": "iso8859-8",
    "iso-8859-6-i": "iso8859-6",
    "iso-8859-6-e": "iso8859-6",
    "x-sjis": "cp932",
    "windows-31j": "cp932",
    "x-euc-jp": "euc_jp",
    "x-mac-roman": "mac-roman",
    "x-mac-cyrillic": "mac-cyrillic",
    "x-cp1250": "cp1250",
    "x-cp1251": "cp1251",
    "cp-850": "cp850",
    "ucs-2": "utf-16",
    "iso-10646-ucs-2": "utf-16-be",
    "cseuckr": "cp949",
    "x-unicode-2-0-utf-7": "utf-7",
    "x-utf-7": "utf-7",
}
# Labels that say "we do not know": decode by guessing instead of reporting a bogus codec.
_UNKNOWN_LABELS = frozenset(
    {"x-unknown", "unknown", "unknown-8bit", "x-user-defined", "default", "none", "charset",
     "7bit", "8bit", "binary"}
)
# Mailers label text with the standard charset but use the vendor superset (WHATWG does the same).
_SUPERSETS = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "euc_kr": "cp949",
    "shift_jis": "cp932",
    "big5": "big5hkscs",
    "tis-620": "cp874",
    "iso8859-11": "cp874",
    "iso8859-1": "cp1252",
}
# Pseudo-codecs implemented below, usable wherever a codec name is.
_MIXED = "utf-8+cp1252"
_ISO2022JP_MS = "iso2022_jp+cp932"
# Tried in order when a declared charset does not fit the bytes: the usual mislabellings.
_SIBLINGS = {
    "ascii": ("utf-8", "cp1252", "latin-1"),
    "cp1252": ("latin-1",),
    "iso2022_jp": ("iso2022_jp_ext", "iso2022_jp_2", "iso2022_jp_2004", _ISO2022JP_MS, "cp932",
                   "euc_jp"),
    "euc_jp": ("cp932", "euc_jis_2004"),
    "cp932": ("euc_jp", "shift_jis_2004"),
}
# Multi-byte codecs reject most foreign byte sequences, so guessing tries them before the
# single-byte ones, which accept anything and would hide the right answer.
_VALIDATING = frozenset(
    {"gb18030", "cp949", "cp932", "euc_jp", "euc_jis_2004", "shift_jis_2004", "big5hkscs",
     "cp950", "iso2022_jp", "iso2022_jp_ext", "iso2022_jp_2", "iso2022_kr", "johab", "hz"}
)
# Text codecs that are not charsets; a label naming them is a sender bug, not an instruction.
_NOT_CHARSETS = frozenset(
    {"idna", "punycode", "unicode-escape", "raw-unicode-escape", "undefined", "mbcs", "oem"}
)
# Charsets whose bytes can also be valid UTF-8 with a different meaning.
_NOT_ASCII_COMPATIBLE = frozenset(
    {"utf-7", "utf-16", "utf-16-be", "utf-16-le", "utf-32", "utf-32-be", "utf-32-le", "hz",
     "iso2022_jp", "iso2022_jp_1", "iso2022_jp_2", "iso2022_jp_2004", "iso2022_jp_3",
     "iso2022_jp_ext", "iso2022_kr"}
)
_LABEL_RE = re.compile(r"[a-z0-9][a-z0-9._:+()-]{0,39}")


@functools.lru_cache(maxsize=1024)  # a handful of labels, asked for on every message
def _codec_for(label: str) -> str | None:
    """The Python codec for a declared charset label; None when it names nothing usable."""
    label = label.strip().strip("\"'").lower().split("*", 1)[0]
    if label in _UNKNOWN_LABELS or not _LABEL_RE.fullmatch(label):
        return None
    label = _LABEL_ALIASES.get(label.replace("_", "-"), label)
    try:
        name = codecs.lookup(label).name
        b"".decode(name)  # rejects bytes-to-bytes codecs such as base64 or zlib
    except (LookupError, ValueError):
        return None
    if name.replace("_", "-") in _NOT_CHARSETS:
        return None
    return _SUPERSETS.get(name, name)


_SURROGATE_RUN_RE = re.compile("[\udc80-\udcff]+")
_HIGH_BYTES = bytes(range(0x80, 0x100))
_JIS_ESCAPE_RE = re.compile(rb"\x1b(\$[@B]|\([BJI])")


def _decode_mixed(data: bytes) -> str:
    """Mostly-UTF-8 text with stray legacy bytes (pasted or concatenated content): the valid
    UTF-8 is kept and only the stray bytes are read as cp1252."""
    text = data.decode("utf-8", "surrogateescape")
    stray = sum(len(run) for run in _SURROGATE_RUN_RE.findall(text))
    if stray * 2 > len(data) - len(data.translate(None, _HIGH_BYTES)):
        raise UnicodeDecodeError("utf-8", data, 0, len(data), "mostly not UTF-8")
    return _SURROGATE_RUN_RE.sub(lambda run: _single_byte(_to_bytes(run.group())), text)


def _single_byte(data: bytes) -> str:
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _decode_iso2022jp_ms(data: bytes) -> str:
    """ISO-2022-JP as Windows writes it (CP50220/1): JIS X 0208 plus the NEC and IBM rows
    (circled digits and the like) that Python's iso2022_jp codecs reject. The JIS pairs are
    turned into Shift_JIS and decoded with cp932, which has those rows."""
    out = bytearray()
    mode = b"(B"
    pos = 0
    for escape in [*_JIS_ESCAPE_RE.finditer(data), None]:
        segment = data[pos:escape.start() if escape else len(data)]
        if mode.startswith(b"$"):
            _jis_to_sjis(segment, out)
        elif mode == b"(I":  # half-width katakana: JIS X 0201 shifted into the 8-bit range
            out += bytes(b + 0x80 if 0x21 <= b <= 0x5F else b for b in segment)
        else:
            out += segment
        if escape:
            mode, pos = escape.group(1), escape.end()
    return out.decode("cp932")


def _jis_to_sjis(segment: bytes, out: bytearray) -> None:
    index = 0
    while index < len(segment):
        first = segment[index]
        if not 0x21 <= first <= 0x7E:  # line breaks inside a two-byte run pass through
            out.append(first)
            index += 1
            continue
        second = segment[index + 1] if index + 1 < len(segment) else 0
        if not 0x21 <= second <= 0x7E:
            raise UnicodeDecodeError("iso2022_jp", segment, index, index + 1, "broken pair")
        if first % 2:
            second += 0x1F + (second >= 0x60)
        else:
            second += 0x7E
        lead = ((first + 1) >> 1) + 0x70
        out += bytes((lead + 0x40 if lead >= 0xA0 else lead, second))
        index += 2


_CUSTOM_DECODERS = {_MIXED: _decode_mixed, _ISO2022JP_MS: _decode_iso2022jp_ms}


def _try_decode(data: bytes, names: Iterable[str]) -> tuple[str, str] | None:
    for name in names:
        custom = _CUSTOM_DECODERS.get(name)
        try:
            return (custom(data) if custom else data.decode(name)), name
        except (UnicodeError, LookupError):
            continue
    return None


def _unique(names: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(names))


class _Context:
    """Per-message state: defect notes, the charsets the message declares (the best guesses for
    undeclared 8-bit text) and the stashed base64 runs."""

    def __init__(self, notes: Iterable[str] = (), keep_data: bool = True) -> None:
        self.defects: list[str] = list(notes)
        self.hints: tuple[str, ...] = ()
        self.blobs: list[memoryview] = []
        self.keep_data = keep_data

    def restore(self, data: bytes) -> bytes:
        """Put stashed base64 runs back (see _stash_blobs)."""
        if not self.blobs or _BLOB_TOKEN not in data:
            return data
        return b"".join(self.pieces(data))

    def pieces(self, data: bytes) -> Iterator[bytes | memoryview]:
        """`data` with its stashed runs put back, in pieces: the runs are views of the raw
        message, so a large payload can be read without a copy of it."""
        if not self.blobs or _BLOB_TOKEN not in data:
            yield data
            return
        position = 0
        for match in _BLOB_TOKEN_RE.finditer(data):
            index = int(match.group(1))
            if index >= len(self.blobs):
                continue
            yield data[position:match.start()]
            blob = self.blobs[index]
            if not match.group(2):  # the token ended the payload without its line break
                end = len(blob)
                while end and blob[end - 1] in b"\r\n":
                    end -= 1
                blob = blob[:end]
            yield blob
            position = match.end()
        yield data[position:]

    def note(self, text: str) -> None:
        if text not in self.defects:
            self.defects.append(text)

    def set_hints(self, labels: Iterable[str]) -> None:
        codecs_ = [c for c in (_codec_for(x) for x in labels) if c and c not in ("utf-8", "ascii")]
        expanded = _unique(n for c in codecs_ for n in (c, *_SIBLINGS.get(c, ())))
        self.hints = tuple(sorted(expanded, key=lambda n: n not in _VALIDATING))

    def decode(self, data: bytes, label: str | None, where: str,
               guesses: Sequence[str] = ()) -> str:
        """Decode with the declared charset, repairing wrong or unknown labels."""
        codec = _codec_for(label) if label else None
        shown = repr(label.strip()[:40]) if label else ""  # hostile labels can be huge
        if codec is None:
            if label:
                self.note(f"unknown charset {shown} in {where}")
            found = _try_decode(data, _unique(("utf-8", _MIXED, *guesses, "cp1252", "latin-1")))
            return found[0] if found else data.decode("latin-1")
        fallbacks = _unique((codec, *_SIBLINGS.get(codec, ()), "utf-8", _MIXED))
        if codec not in _NOT_ASCII_COMPATIBLE and not data.isascii():
            # Non-ASCII bytes that form valid UTF-8 are UTF-8 whatever the label says: legacy
            # text almost never validates by accident, mislabelled UTF-8 is common.
            fallbacks.insert(0, "utf-8")
        found = _try_decode(data, _unique(fallbacks))
        if found:
            if found[1] != codec:
                self.note(f"charset {shown} did not fit {where}; decoded as {found[1]}")
            return found[0]
        self.note(f"undecodable bytes for charset {shown} in {where} replaced")
        try:
            return data.decode(codec, "replace")
        except (UnicodeError, LookupError):
            return data.decode("latin-1")

    def fix_raw(self, value: str, where: str) -> str:
        """Raw 8-bit bytes (kept as surrogates by the stdlib parser) decoded by guessing."""
        if value.isascii() or not _SURROGATE_RUN_RE.search(value):
            return value
        data = _to_bytes(value)
        found = _try_decode(data, _unique(("utf-8", _MIXED, *self.hints, "cp1252")))
        if found is None:
            found = (data.decode("latin-1"), "latin-1")
        if found[1] != "utf-8":
            self.note(f"raw 8-bit bytes in {where} decoded as {found[1]}")
        return found[0]


def _to_bytes(value: str) -> bytes:
    try:
        return value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return value.encode("utf-8", "replace")


# --------------------------------------------------------------------------- header block repair

_HEADER_LINE_RE = re.compile(rb"([\x21-\x39\x3b-\x7e]+)([ \t]*):")
# In the header block a bare CR ends a line when a header, a folded line or the blank line
# follows it; any other bare CR is junk inside a value.
_HEADER_LINE_END_RE = re.compile(rb"\n|\r(?=\r|[ \t]|[\x21-\x39\x3b-\x7e]+[ \t]*:)")
# A header block with nothing to repair: header lines (no space before the colon, no bare
# CR) and their folded lines, then the blank line that ends it.
_CLEAN_HEADERS_RE = re.compile(
    rb"(?:[\x21-\x39\x3b-\x7e]+:[^\r\n]*\r?\n(?:[ \t][^\r\n]*\r?\n)*)+\r?\n")
_FIELD_NAME_RE = re.compile(rb"^([\x21-\x39\x3b-\x7e]+):", re.MULTILINE)
# A header block names at least one of these, or it is not mail (random bytes often contain
# a run that ends in a colon).
_MAIL_FIELDS = frozenset({
    "from", "sender", "reply-to", "to", "cc", "bcc", "subject", "date", "message-id",
    "in-reply-to", "references", "received", "return-path", "delivered-to", "x-original-to",
    "resent-from", "resent-sender", "resent-to", "resent-date", "resent-message-id",
    "mime-version", "content-type", "content-transfer-encoding",
})


def _repair_header_block(raw: bytes) -> tuple[bytes, list[str]]:
    """Make the header block something the stdlib parser reads as intended.

    The stdlib ends the header block at the first line that is neither a header nor a
    continuation, losing every header after it. Real mail has junk before the first header and
    folded lines without leading whitespace; both are repaired here, while a block that really
    runs into the body without a blank line is left for the stdlib to split.
    """
    notes: list[str] = []
    if b"\n" not in raw[:65536] and b"\r" in raw:
        raw = raw.replace(b"\r", b"\n")
        notes.append("bare CR line endings")
    clean = None if notes else _CLEAN_HEADERS_RE.match(raw)
    if clean:  # most mail: headers and folded lines, then a blank line; nothing to repair
        names = {n.lower() for n in _FIELD_NAME_RE.findall(raw, 0, clean.end())}
        if any(name.decode("ascii") in _MAIL_FIELDS for name in names):
            return raw, notes
    return _repair_lines(raw, notes)


def _repair_lines(raw: bytes, notes: list[str]) -> tuple[bytes, list[str]]:
    """_repair_header_block line by line, for a block that may need it."""
    out: list[bytes] = []
    pending: list[bytes] = []
    names: set[bytes] = set()
    seen_header = changed = False
    pos, size = 0, len(raw)
    while pos < size:
        found = _HEADER_LINE_END_RE.search(raw, pos)
        end = size if found is None else found.end()
        line = raw[pos:end]
        if line.endswith(b"\r"):
            line = line[:-1] + b"\n"
            changed = True
            notes.append("bare CR line endings")
        content = line.rstrip(b"\r\n")
        if not content:
            if seen_header:
                break
            changed = True  # blank lines before the first header
            pos = end
            continue
        header = _HEADER_LINE_RE.match(content)
        if header or (not out and content.startswith(b"From ")):
            if pending:
                out.extend(x if x[:1] in b" \t" else b" " + x for x in pending)
                pending = []
                changed = True
                notes.append("header continuation lines without leading whitespace")
            if header and header.group(2):
                line = header.group(1) + line[header.end() - 1:]
                changed = True
                notes.append("whitespace before a header colon")
            if b"\r" in content:
                line = re.sub(rb"\r(?!\n)", b" ", line)
                changed = True
                notes.append("bare CR inside a header")
            if header:
                seen_header = True
                names.add(header.group(1).lower())
            out.append(line)
        elif not seen_header:
            changed = True
            notes.append("text before the header block dropped")
        elif pending or content[:1] not in b" \t":
            pending.append(line)
        else:
            out.append(line)
        pos = end
    if not any(name.decode("ascii") in _MAIL_FIELDS for name in names):
        raise ParseError("no header block")
    if not changed:
        return raw, notes
    # Unresolved pending lines start the body (no blank separator): keep them where they were.
    return b"".join(out) + b"".join(pending) + raw[pos:], _unique(notes)


# Runs of at least this many bytes of base64 lines (no `=`, so quoted-printable never matches)
_B64_RUN_RE = re.compile(rb"(?m)^(?:[A-Za-z0-9+/]{40,998}+\r?\n)++")
# The same run after its line's "\n": a pattern that starts with a literal is only tried
# where that byte is, not at every position of the message (a fifth of the stash's time).
_B64_LINES_RE = re.compile(rb"\n((?:[A-Za-z0-9+/]{40,998}+\r?\n)++)")
_BLOB_TOKEN = b"mailbridge-blob-"
_BLOB_TOKEN_RE = re.compile(rb"mailbridge-blob-(\d+)(\r?\n)?")
# Also worth it for a typical 5 KB attachment: a third of a mixed corpus' parse time.
_BLOB_MIN_RUN = 2048
_BLOB_MIN_MESSAGE = 4 * _BLOB_MIN_RUN


def _stash_blobs(raw: bytes) -> tuple[bytes, list[memoryview]]:
    """Swap long base64 runs for one-line tokens before the stdlib parses the message.

    Its parser spends about 10 µs in Python on every line, 4 s for a 30 MB attachment; a token
    is one line. A run cannot contain a boundary, header or blank line, so the MIME structure
    is unchanged, and the bytes go back in when a payload is read (`_Context.restore`). The
    runs are kept as views of `raw`, not copies.
    """
    if len(raw) < _BLOB_MIN_MESSAGE or _BLOB_TOKEN in raw:
        return raw, []
    first = _B64_RUN_RE.match(raw)  # a run on the message's first line has no "\n" before it
    spans = [first.span()] if first is not None else []
    spans += [run.span(1) for run in _B64_LINES_RE.finditer(raw, spans[0][1] if spans else 0)]
    view, blobs, pieces, kept = memoryview(raw), [], [], 0
    for start, end in spans:
        if end - start >= _BLOB_MIN_RUN:
            pieces += [view[kept:start], b"%s%d\n" % (_BLOB_TOKEN, len(blobs))]
            blobs.append(view[start:end])
            kept = end
    if not blobs:
        return raw, []
    return b"".join([*pieces, view[kept:]]), blobs


class _RawPolicy(Compat32):
    """compat32, but header values come back exactly as stored (raw 8-bit bytes as
    surrogates) and are written back unfolded, so decoding stays in our hands and
    re-serialising a nested message cannot fail on a header the stdlib dislikes."""

    def header_fetch_parse(self, name: str, value: str) -> str:
        return value

    def fold(self, name: str, value: str) -> str:
        return f"{name}: {value}{self.linesep}"

    def fold_binary(self, name: str, value: str) -> bytes:
        return _to_bytes(self.fold(name, value))


_POLICY = _RawPolicy()


class _BoundaryLines(BufferedSubFile):
    """The stdlib's line buffer tries every line against the boundary of every open multipart,
    so deep nesting costs depth x lines (seconds for a megabyte 300 levels deep). Only a line
    that starts with `--` can be a boundary, and only a blank one can end a delivery-status
    block (the one other end-of-part test): any other line is passed on at once."""

    def readline(self) -> str | object:
        if self._lines:
            line = self._lines[0]
            if line[:2] != "--" and line[:1] not in ("\r", "\n"):
                return self._lines.popleft()
        return super().readline()


class _BoundaryMatch:
    """A multipart's boundary test as feedparser compiles it, without compiling a pattern for
    each boundary (every message's is new, so re's cache never has it: a tenth of parsing):
    the separator is compared as a string and the rest of the line matched by one pattern
    compiled once. feedparser reads only `group('end')` and `group('linesep')` of a match."""

    __slots__ = ("separator",)
    _TAIL = mime_split.BOUNDARY_TAIL_RE

    def __init__(self, separator: str) -> None:
        self.separator = separator

    def match(self, line: str) -> re.Match[str] | None:
        if not line.startswith(self.separator):
            return None
        return self._TAIL.match(line, len(self.separator))


class _FeedparserRe:
    """The `re` module as email.feedparser sees it: the same, except that a boundary pattern
    (recognised by its exact shape, the escaped separator read back and checked) becomes a
    _BoundaryMatch. Any other pattern, or a shape a later Python changes, is compiled."""

    _HEAD, _TAIL = "(?P<sep>", r")(?P<end>--)?(?P<ws>[ \t]*)(?P<linesep>\r\n|\r|\n)?$"
    _ESCAPED = re.compile(r"\\(.)", re.DOTALL)

    def __getattr__(self, name: str) -> object:
        return getattr(re, name)

    def compile(self, pattern: str, flags: int = 0) -> object:
        if not flags and pattern.startswith(self._HEAD) and pattern.endswith(self._TAIL):
            escaped = pattern[len(self._HEAD):-len(self._TAIL)]
            separator = self._ESCAPED.sub(r"\1", escaped)
            if re.escape(separator) == escaped:
                return _BoundaryMatch(separator)
        return re.compile(pattern, flags)


if getattr(email.feedparser, "re", None) is re:
    email.feedparser.re = _FeedparserRe()  # type: ignore[assignment]


# The shortcut reads the stdlib buffer's private line queue: used only where it is the deque
# it has been since Python 3.3, else the stdlib's own buffer does (slower, never wrong).
_LINES_FIT = isinstance(getattr(BufferedSubFile(), "_lines", None), deque)


def _parse_mime(data: bytes, ctx: _Context) -> Message:
    text = data.decode("ascii", "surrogateescape")  # as BytesParser does
    found = mime_split.split(text, _POLICY)  # plain mail: the same tree, found faster
    if found is not None:
        return found
    try:
        parser = FeedParser(policy=_POLICY)
        if _LINES_FIT:
            parser._input = _BoundaryLines()  # noqa: SLF001 - before the first feed
        for start in range(0, len(text), 8192):  # in the chunks Parser.parse feeds
            parser.feed(text[start:start + 8192])
        return parser.close()
    except Exception:  # noqa: BLE001 - hostile nesting or stdlib bugs; keep headers and raw body
        ctx.note("MIME structure could not be parsed; body kept as text")
        return BytesParser(policy=_POLICY).parsebytes(data, headersonly=True)


# --------------------------------------------------------------------------- header values

_EW_RE = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?]*)\?=")
_FOLD_RE = re.compile(r"\r?\n(?=[ \t])")
_B64_JUNK_RE = re.compile(rb"[^A-Za-z0-9+/]")


def _unfold(value: str) -> str:
    if "\n" not in value and "\r" not in value:  # most values: one line
        return value
    return _FOLD_RE.sub("", value).replace("\r", "").replace("\n", "")


def _b64decode(data: bytes) -> bytes:
    """Lenient base64: junk characters dropped, a dangling character ignored, padding fixed."""
    try:
        return binascii.a2b_base64(data)
    except binascii.Error:
        pass
    data = _B64_JUNK_RE.sub(b"", data)
    data = data[: len(data) - len(data) % 4] if len(data) % 4 == 1 else data
    return binascii.a2b_base64(data + b"=" * (-len(data) % 4))


_B64_KEPT = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
_B64_DROPPED = bytes(b for b in range(256) if b not in _B64_KEPT)
_STREAM_CHUNK = 1 << 20


class _Base64Stream:
    """`_b64decode` a piece at a time, with the same result as on the whole: full quads are
    decoded as they come; from the first `=` on (padding, normally the last line) the rest is
    kept and decoded by `_b64decode` at the end, which then sees what it would have seen."""

    def __init__(self) -> None:
        self.carry = b""
        self.tail: list[bytes] | None = None

    def feed(self, piece: bytes | memoryview) -> bytes:
        data = self.carry + bytes(piece).translate(None, _B64_DROPPED)
        if self.tail is not None or b"=" in data:
            self.tail = [*(self.tail or ()), data]
            self.carry = b""
            return b""
        cut = len(data) - len(data) % 4
        self.carry = data[cut:]
        return binascii.a2b_base64(data[:cut])

    def end(self) -> bytes:
        rest = b"".join(self.tail) if self.tail is not None else self.carry
        return _b64decode(rest) if rest else b""


def _decode_words(text: str, ctx: _Context, where: str) -> str:
    """RFC 2047, leniently: encoded-words glued to text are decoded too, and adjacent words in
    one charset are joined before decoding because mailers split multi-byte characters."""
    if "=?" not in text:
        return text
    out: list[str] = []
    chunk = bytearray()
    charset: str | None = None
    last = 0

    def flush() -> None:
        nonlocal charset
        if charset is not None:
            out.append(ctx.decode(bytes(chunk), charset, where, ctx.hints))
            chunk.clear()
            charset = None

    for match in _EW_RE.finditer(text):
        between = text[last:match.start()]
        if charset is None or between.strip():
            flush()
            out.append(between)
        label, kind, payload = match.groups()
        if kind in "bB":
            data = _b64decode(payload.encode("ascii", "ignore"))
        else:
            data = binascii.a2b_qp(_to_bytes(payload), header=True)
        if charset is not None and label.lower() != charset:
            flush()
        charset = label.lower()
        chunk.extend(data)
        last = match.end()
    flush()
    out.append(text[last:])
    return "".join(out)


def _header_text(value: str, ctx: _Context, where: str) -> str:
    return _decode_words(ctx.fix_raw(_unfold(value), where), ctx, where).strip()


# --------------------------------------------------------------------------- addresses

_ADDR_TOKEN_RE = re.compile(
    # Possessive loops that also take a dangling backslash: an unterminated quote or comment
    # runs to the end in one pass instead of being retried from every later position.
    r'"(?:[^"\\]|\\.?)*+(?:"|\Z)'  # quoted string
    r"|\((?:[^()\\]|\\.?|\((?:[^()\\]|\\.?)*+\))*+(?:\)|\Z)"  # comment, one level nested
    r"|=\?[^?\s]+\?[bBqQ]\?[^?]*\?="  # encoded-word: its commas and colons are not syntax
    r"|[<>,;:]"
    r'|[^"(<>,;:=]+|=',
    re.DOTALL,
)
_QUOTED_PAIR_RE = re.compile(r"\\(.)", re.DOTALL)
_WS_RE = re.compile(r"\s+")


def _address_pieces(value: str) -> list[list[str]]:
    """Split an address list into per-address token lists at top-level commas; group names
    (`undisclosed-recipients:;`) are dropped."""
    pieces: list[list[str]] = []
    current: list[str] = []
    in_angle = False
    for token in _ADDR_TOKEN_RE.findall(value):
        if token == "<":
            in_angle = True
        elif token == ">":
            in_angle = False
        elif not in_angle and token in (",", ";"):
            pieces.append(current)
            current = []
            continue
        elif not in_angle and token == ":" and not any("@" in t for t in current):
            current = []
            continue
        current.append(token)
    pieces.append(current)
    return [p for p in pieces if "".join(p).strip()]


def _phrase(tokens: Iterable[str], ctx: _Context, where: str) -> str:
    parts = []
    for token in tokens:
        if token.startswith('"'):
            inner = token[1:-1] if len(token) > 1 and token.endswith('"') else token[1:]
            parts.append(_QUOTED_PAIR_RE.sub(r"\1", inner))
        elif not token.startswith("("):
            parts.append(token)
    name = _WS_RE.sub(" ", _decode_words("".join(parts), ctx, where)).strip()
    if len(name) > 1 and name[0] == name[-1] and name[0] in "'\"":
        name = name[1:-1].strip()
    return name


def _comment_text(tokens: Iterable[str], ctx: _Context, where: str) -> str:
    comments = [t[1:-1] if t.endswith(")") else t[1:] for t in tokens if t.startswith("(")]
    return _WS_RE.sub(" ", _decode_words(" ".join(comments), ctx, where)).strip()


def _address(tokens: list[str], ctx: _Context, where: str, reparse: bool = True) -> Address:
    if "<" in tokens:
        start = tokens.index("<")
        end = tokens.index(">", start) if ">" in tokens[start:] else len(tokens)
        email = "".join(t for t in tokens[start + 1:end] if not t.startswith("(")).strip()
        name = _phrase(tokens[:start], ctx, where) or _comment_text(tokens, ctx, where)
        return Address(name, email)
    bare = "".join(t for t in tokens if not t.startswith("(")).strip()
    if reparse and "@" not in bare and "=?" in bare:
        # An encoded-word standing for the whole address (RFC 2047 forbids it; mailers do it).
        decoded = _decode_words(bare, ctx, where)
        if "@" in decoded:
            pieces = _address_pieces(decoded)
            if pieces:
                return _address(pieces[0], ctx, where, reparse=False)
    if "@" not in bare and _WS_RE.search(bare):
        return Address(_phrase(tokens, ctx, where), "")
    return Address(_comment_text(tokens, ctx, where), bare)


def _addresses(values: Iterable[str], ctx: _Context, where: str) -> tuple[Address, ...]:
    result: list[Address] = []
    for value in values:
        carried: list[list[str]] = []  # pieces with neither `<` nor `@`: maybe half a name
        for tokens in _address_pieces(ctx.fix_raw(_unfold(value), where)):
            if "<" not in tokens and not any("@" in t for t in tokens if t[:1] != "("):
                carried.append(tokens)
                continue
            if "<" in tokens and carried:
                # `Doe, John <j@x>`: an unquoted comma inside a display name.
                tokens = [t for piece in carried for t in (*piece, ",")] + tokens
            else:
                result.extend(_address(piece, ctx, where) for piece in carried)
            carried = []
            result.append(_address(tokens, ctx, where))
        result.extend(_address(piece, ctx, where) for piece in carried)
    return tuple(a for a in result if a.email or a.name)


# --------------------------------------------------------------------------- message ids, date

_ID_RE = re.compile(r"<([^<>]*)>")


def _message_ids(value: str | None) -> list[str]:
    if not value:
        return []
    value = _unfold(value)
    if "<" in value:
        found = (_WS_RE.sub("", m) for m in _ID_RE.findall(value))
    else:
        found = (t.strip("<>") for t in re.split(r"[\s,]+", value))
    return [i for i in found if i]


def normalize_message_id(value: str | None) -> str | None:
    """`<abc@x>` and ` abc@x ` both become `abc@x`; empty or missing becomes None."""
    ids = _message_ids(value)
    return ids[0] if ids else None


def _parse_date(values: Iterable[str]) -> datetime | None:
    for value in values:
        try:
            parsed = parsedate_to_datetime(_unfold(value).strip())
        except (TypeError, ValueError, IndexError, OverflowError):
            continue
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)  # "-0000": zone unknown, UTC is the best guess
        try:
            return parsed.astimezone(UTC)
        except (OverflowError, ValueError):
            continue
    return None


# --------------------------------------------------------------------------- MIME parts

_UU_ENCODINGS = frozenset({"x-uuencode", "uuencode", "uue", "x-uue"})
_MIMETYPES = mimetypes.MimeTypes()  # built-in table only: names must not depend on the host
_EXTENSIONS = {
    "text/plain": ".txt",
    "text/html": ".html",
    "message/delivery-status": ".txt",
    "text/rfc822-headers": ".txt",
    "message/disposition-notification": ".txt",
    "message/feedback-report": ".txt",
    "image/jpg": ".jpg",
    "text/calendar": ".ics",
}
# Outlook names inline images only in their Content-ID: <image001.jpg@01CDB132.D8A510F0>.
_CID_FILENAME_RE = re.compile(r"([\w.-]+\.[A-Za-z0-9]{2,5})@")
_META_CHARSET_RE = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([A-Za-z0-9._:-]+)""", re.I)
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]+")
_PATH_CHARS_RE = re.compile(r"[/\\]+")


def _uudecode(data: bytes) -> bytes:
    """uuencoded payload; tolerates a missing `begin` line and lines broken by old encoders."""
    lines = data.splitlines()
    for index, line in enumerate(lines):
        if line.startswith(b"begin "):
            lines = lines[index + 1:]
            break
    out = []
    for line in lines:
        stripped = line.strip()
        if stripped == b"end":
            break
        if not stripped:
            continue
        try:
            out.append(binascii.a2b_uu(line))
        except binascii.Error:
            try:
                out.append(binascii.a2b_uu(line[: ((line[0] - 32) & 63) * 4 // 3 + 2]))
            except binascii.Error:
                continue
    return b"".join(out)


def _header(part: Message, name: str) -> str | None:
    value = part.get(name)
    return _unfold(value).strip() if isinstance(value, str) else None


def _payload_bytes(part: Message, ctx: _Context) -> bytes:
    cte = (_header(part, "content-transfer-encoding") or "").lower()
    if cte == "base64" or cte in _UU_ENCODINGS:
        # Our decoders, because the stdlib returns the still-encoded text on a base64 length
        # error and needs a `begin` line for uuencode. The undecoded payload is ASCII apart from
        # junk, so reading it lossily is harmless, but reading it at all makes the stdlib decode
        # 8-bit junk with the declared charset, which raises on a hostile label.
        try:
            payload = part.get_payload()
        except (UnicodeError, LookupError, TypeError):
            payload = None
        if isinstance(payload, str):
            data = ctx.restore(payload.encode("ascii", "ignore"))
            return _b64decode(data) if cte == "base64" else _uudecode(data)
    data = part.get_payload(decode=True)  # exact bytes: 8-bit text, or quoted-printable decoded
    # Stashed runs hold no `=` or whitespace, so quoted-printable decoding left them unchanged.
    return ctx.restore(data) if isinstance(data, bytes) else b""


def _base64_measure(part: Message, ctx: _Context) -> tuple[int, str] | None:
    """Size and SHA-256 of a base64 payload, decoded a megabyte at a time and never held
    whole; None when the payload is not one to stream (see `_payload_bytes`)."""
    if (_header(part, "content-transfer-encoding") or "").lower() != "base64":
        return None
    try:
        payload = part.get_payload()
    except (UnicodeError, LookupError, TypeError):
        return None
    if not isinstance(payload, str):
        return None
    stream, digest, size = _Base64Stream(), hashlib.sha256(), 0
    for piece in ctx.pieces(payload.encode("ascii", "ignore")):
        for start in range(0, len(piece), _STREAM_CHUNK):
            data = stream.feed(piece[start:start + _STREAM_CHUNK])
            digest.update(data)
            size += len(data)
    data = stream.end()
    digest.update(data)
    return size + len(data), digest.hexdigest()


def _serialise(part: Message, ctx: _Context, linesep: str) -> bytes:
    """A message/* part as bytes: the enclosed message for rfc822, the raw blocks otherwise."""
    buffer = BytesIO()
    generator = BytesGenerator(buffer, mangle_from_=False, maxheaderlen=0)
    blocks = _children(part)
    if part.get_content_type() == "message/rfc822" and blocks:
        generator.flatten(blocks[0], linesep=linesep)
    else:
        for block in blocks:
            generator.flatten(block, linesep=linesep)
    return ctx.restore(buffer.getvalue())


def _param(part: Message, name: str, header: str = "content-type") -> str | tuple | None:
    """`part.get_param(name, header=header)`, the header's parameters parsed once for every
    name asked of it (charset, name, filename: the stdlib parses them again each time)."""
    parsed = part.__dict__.setdefault("_mailbridge_params", {})
    if header not in parsed:
        try:
            parsed[header] = part.get_params(None, header=header) or []
        except Exception:  # noqa: BLE001 - stdlib RFC 2231 decoding crashes on hostile input
            parsed[header] = []
    name = name.lower()
    return next((value for key, value in parsed[header] if key.lower() == name), None)


def _charset(part: Message) -> str | None:
    value = _param(part, "charset")
    if isinstance(value, tuple):
        value = value[2]
    value = str(value).strip().lower() if value else ""
    return value if value.isascii() and value else None


def _filename(part: Message, ctx: _Context) -> str:
    value = _param(part, "filename", "content-disposition")
    if value is None:
        value = _param(part, "name")
    if isinstance(value, tuple):  # RFC 2231: (charset, language, percent-decoded text)
        charset, _, text = value
        try:
            data = str(text).encode("latin-1", "surrogateescape")
        except UnicodeEncodeError:
            data = _to_bytes(str(text))
        name = ctx.decode(data, charset or None, "a filename", ctx.hints)
    elif isinstance(value, str):
        name = _header_text(value, ctx, "a filename")
    else:
        return ""
    return _CONTROL_RE.sub(" ", name).strip()


def _charsets(msg: Message, headers: Iterable[str]) -> Iterator[str]:
    """Every charset the message declares, as hints for undeclared 8-bit header text."""
    for part in _walk(msg):
        charset = _charset(part)
        if charset:
            yield charset
    for value in headers:
        for match in _EW_RE.finditer(value):
            yield match.group(1)


def _walk(msg: Message) -> Iterator[Message]:
    # Iterative: hostile nesting depth must not hit the recursion limit.
    stack = [msg]
    while stack:
        part = stack.pop()
        yield part
        stack.extend(reversed(_children(part)))


def _children(part: Message) -> list[Message]:
    # Only for multiparts: get_payload() on a leaf may decode it with a hostile charset label.
    if not part.is_multipart():
        return []
    return [p for p in part.get_payload() if isinstance(p, Message)]


@dataclass
class _Body:
    plain: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    unnamed: int = 0
    unnamed_messages: int = 0


def _collect(msg: Message, ctx: _Context, linesep: str) -> _Body:
    body = _Body()
    stack = [msg]
    while stack:
        part = stack.pop()
        ctype = part.get_content_type()
        if part.is_multipart() and not ctype.startswith("message/"):
            stack.extend(reversed(_children(part)))
            continue
        try:
            _leaf(part, ctype, ctx, body, linesep)
        except Exception as exc:  # noqa: BLE001 - one broken part must not lose the message
            ctx.note(f"{ctype} part skipped: {type(exc).__name__}")
    return body


def _message_filename(part: Message, ctx: _Context, body: _Body) -> str:
    """A forwarded or bounced message is best recognised by its subject."""
    enclosed = _children(part)
    subjects = enclosed[0].get_all("subject", []) if enclosed else []
    subject = _header_text(subjects[0], ctx, "an enclosed subject") if subjects else ""
    subject = _PATH_CHARS_RE.sub("_", _CONTROL_RE.sub(" ", subject)).strip()[:120]
    if subject:
        return f"{subject}.eml"
    body.unnamed_messages += 1
    return "message.eml" if body.unnamed_messages == 1 else f"message-{body.unnamed_messages}.eml"


def _leaf(part: Message, ctype: str, ctx: _Context, body: _Body, linesep: str) -> None:
    disposition = part.get_content_disposition()
    filename = _filename(part, ctx)
    if ctype.startswith("multipart/"):
        # The boundary was never found, so the stdlib left the whole body as one string.
        ctx.note(f"{ctype} without a usable boundary; kept as text")
        ctype = "text/plain"
    if ctype in ("text/plain", "text/html") and disposition != "attachment" and not filename:
        data = _payload_bytes(part, ctx)
        guesses: list[str] = []
        meta = _META_CHARSET_RE.search(data[:8192]) if ctype == "text/html" else None
        meta_codec = _codec_for(meta.group(1).decode("ascii")) if meta else None
        if meta_codec:
            guesses.append(meta_codec)
        text = ctx.decode(data, _charset(part), f"the {ctype} body", guesses)
        if ctype == "text/plain":
            body.plain.append(text.replace("\r\n", "\n"))
        else:
            body.html.append(text)
        return
    # A multipart leaf is message/*: the stdlib parsed the enclosed message or header blocks.
    measured = None if ctx.keep_data or ctype.startswith("message/") else _base64_measure(
        part, ctx)
    if measured is not None:
        data = b""
        size, sha256 = measured
    else:
        data = (_serialise(part, ctx, linesep) if part.is_multipart()
                else _payload_bytes(part, ctx))
        size, sha256 = len(data), hashlib.sha256(data).hexdigest()
    content_id = normalize_message_id(
        ctx.fix_raw(_header(part, "content-id") or "", "a content-id header"))
    cid_name = _CID_FILENAME_RE.match(content_id or "")
    filename = filename or (cid_name.group(1) if cid_name else "")
    if not filename and ctype == "message/rfc822":
        filename = _message_filename(part, ctx, body)
    if not filename:
        body.unnamed += 1
        ext = _EXTENSIONS.get(ctype) or _MIMETYPES.guess_extension(ctype) or ".bin"
        filename = f"attachment-{body.unnamed}{ext}"
    body.attachments.append(Attachment(
        filename=filename,
        content_type=ctype,
        size=size,
        sha256=sha256,
        content_id=content_id,
        inline=disposition == "inline" or (disposition is None and content_id is not None),
        data=data,
    ))


# --------------------------------------------------------------------------- parse


def _defect_name(defect: object) -> str:
    name = type(defect).__name__.removesuffix("Defect")
    return re.sub(r"(?<!^)(?=[A-Z])", " ", name).lower()


def parse(raw: bytes, attachment_data: bool = True) -> ParsedMessage:
    """Parse raw message bytes; raises ParseError only when there is no message to speak of.
    With `attachment_data` false, attachments other than message/* come without their decoded
    bytes (`data` is empty; size and SHA-256 are given): a base64 one is then decoded a
    megabyte at a time instead of whole, so a large message costs little more than itself."""
    raw = bytes(raw)
    if not raw or raw.isspace():  # (not strip(): that copies all but the trailing newline)
        raise ParseError("empty message")
    repaired, notes = _repair_header_block(raw)
    ctx = _Context(notes, keep_data=attachment_data)
    stashed, ctx.blobs = _stash_blobs(repaired)
    msg = _parse_mime(stashed, ctx)
    raw_headers = list(msg.raw_items())
    ctx.set_hints(_charsets(msg, (v for _, v in raw_headers)))

    by_name: dict[str, list[str]] = {}
    for n, v in raw_headers:
        by_name.setdefault(n.strip().lower(), []).append(v)

    def values(name: str) -> list[str]:
        return by_name.get(name, [])

    headers = tuple(
        (n.strip().lower(), _header_text(v, ctx, f"the {n.strip().lower()} header"))
        for n, v in raw_headers
    )
    subjects = values("subject")
    subject = _header_text(subjects[0], ctx, "the subject header") if subjects else ""
    from_ = _addresses(values("from"), ctx, "the from header")
    reply_to = _addresses(values("reply-to"), ctx, "the reply-to header")
    candidates = (*from_, *reply_to, *_addresses(values("sender"), ctx, "the sender header"))
    sender = next((a for a in candidates if "@" in a.email), None)
    sender = sender or next((a for a in candidates if a.email), None)
    sender = sender or (from_[0] if from_ else None)
    if sender is not None and sender not in from_:
        ctx.note("no usable From address; sender taken from Reply-To/Sender")

    linesep = "\r\n" if b"\r\n" in repaired[:4096] else "\n"
    body = _collect(msg, ctx, linesep)
    body.plain = [p for p in body.plain if p.strip()]
    for part in _walk(msg):
        for defect in part.defects:
            ctx.note(_defect_name(defect))
    html = "\n".join(body.html) if body.html else None
    if len(body.plain) > 1:  # e.g. a mailing-list footer in its own part
        text = "\n\n".join(p.rstrip("\n") for p in body.plain)
    elif body.plain:
        text = body.plain[0]
    else:
        text = html_to_text(html) if html is not None else ""
    message_ids = values("message-id")
    in_reply_to = values("in-reply-to")
    return ParsedMessage(
        subject=subject,
        sender=sender,
        to=_addresses(values("to"), ctx, "the to header"),
        cc=_addresses(values("cc"), ctx, "the cc header"),
        reply_to=reply_to,
        message_id=normalize_message_id(message_ids[0]) if message_ids else None,
        in_reply_to=normalize_message_id(in_reply_to[0]) if in_reply_to else None,
        references=tuple(i for v in values("references") for i in _message_ids(v)),
        date=_parse_date(values("date")),
        text=text,
        html=html,
        attachments=tuple(body.attachments),
        headers=headers,
        content_type=msg.get_content_type(),
        defects=tuple(ctx.defects),
    )


# --------------------------------------------------------------------------- HTML to text

# A pipeline of regex passes rather than html.parser: HTMLParser manages about 0.4 MB/s and a
# per-token Python loop not much more, far too slow for the multi-megabyte HTML bodies
# newsletters and spam carry. Each pattern stops at the next `<` or consumes to the end when a
# closing part is missing, so hostile markup still costs linear time. Structure survives the
# whitespace collapse as control-character markers, which are stripped from the input first.
_LINE, _PARAGRAPH, _BREAK, _PRE_OPEN, _PRE_CLOSE = "\x01", "\x02", "\x03", "\x04", "\x05"
_HTML_CONTROL_RE = re.compile(r"[\x00-\x08\x0e-\x1f]")
_COMMENT_RE = re.compile(r"<!--.*?(?:-->|\Z)", re.S)
_HEAD_RE = re.compile(r"<head\b[^<>]*>.*?(?:</head\s*>|(?=<body[\s>])|\Z)", re.S | re.I)
_RAW_TEXT_RE = re.compile(  # the lookahead: 5x faster past the other tags
    r"<(?=[sStTxX])(script|style|title|template|xmp)\b[^<>]*>.*?(?:</\1\s*>|\Z)", re.S | re.I)
_PRE_RE = re.compile(r"<pre\b[^<>]*>(.*?)(?:</pre\s*>|\Z)", re.S | re.I)
_LINK_RE = re.compile(r"<a\b([^<>]*)>([^<]*(?:<(?!/?a\b)[^<]*)*)(?:</a\s*>)?", re.I)
_HREF_RE = re.compile(r"""\bhref\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""", re.I)
_BR_RE = re.compile(r"<br\b[^<>]*>", re.I)
_LI_RE = re.compile(r"<li\b[^<>]*>", re.I)
# A run of block tags (and the whitespace between them) is one marker: it means one break
# however deep the nesting, and a million nested <div> are then one substitution, not a million.
# (The pattern starts with `<` so that the regex engine skips ahead to the next `<`.)


def _tag_run_re(names: str) -> re.Pattern[str]:
    tag = rf"</?(?:{names})\b[^<>]*+>"
    return re.compile(rf"{tag}(?:[ \t\n\r\f\v\xa0]*+{tag})*+", re.I)


_PARAGRAPH_RE = _tag_run_re("p|h[1-6]|blockquote|table|ul|ol|dl|hr|address|figure|fieldset")
_LINE_RE = _tag_run_re(
    "div|tr|li|dt|dd|section|article|aside|header|footer|nav|main|center|form|caption"
    "|figcaption|details|summary|thead|tbody|tfoot|dialog|body")
_CELL_RE = re.compile(r"</t[dh]\s*>", re.I)
_TAG_RE = re.compile(r"<[a-zA-Z/!?][^<>]*>")
_HTML_WS_RE = re.compile(r"[ \t\n\r\f\v\xa0]+")
# A run of markers (with the spaces between them) becomes line breaks: a paragraph or two <br>
# give a blank line, others one break. The run is matched whole, once: a pattern that looks
# for a marker inside the run from every position of it is quadratic, minutes for a megabyte
# of `<br>`. A space before the run is left for the line strip.
_MARKER_RUN_RE = re.compile(r"[\x01-\x03][\x01-\x03 ]*+")
_PRE_SLOT_RE = re.compile(r"\x04(\d+)\x05")


def _inline_text(markup: str) -> str:
    if "<" in markup:
        markup = _TAG_RE.sub("", markup)
    if "&" in markup:
        markup = html_lib.unescape(markup)
    return " ".join(markup.split())


def _link(match: re.Match[str]) -> str:
    """Keep the link text; add the target when it says something the text does not."""
    attributes, inner = match.groups()
    href = _HREF_RE.search(attributes)
    raw_url = next((g for g in href.groups() if g is not None), "").strip() if href else ""
    url = _inline_text(raw_url)
    if not url or url.startswith("#") or url.lower().startswith("javascript:"):
        return inner
    shown = raw_url[7:] if url.lower().startswith("mailto:") else raw_url
    label = _inline_text(inner)
    if label.rstrip("/") == _inline_text(shown).rstrip("/"):
        return inner
    return f"{inner} ({shown})" if label else shown


def _line_breaks(run: re.Match[str]) -> str:
    markers = run.group()
    return "\n\n" if _PARAGRAPH in markers or markers.count(_BREAK) > 1 else "\n"


def html_to_text(html: str) -> str:
    """Readable plain text for a terminal: structure as line breaks, links as `text (url)`."""
    pres: list[str] = []

    def keep_pre(match: re.Match[str]) -> str:
        text = html_lib.unescape(_TAG_RE.sub("", match.group(1))).replace("\xa0", " ")
        pres.append("\n".join(line.rstrip() for line in text.replace("\r\n", "\n").split("\n")))
        return f"{_PARAGRAPH}{_PRE_OPEN}{len(pres) - 1}{_PRE_CLOSE}{_PARAGRAPH}"

    text = _HTML_CONTROL_RE.sub("", html)
    text = _COMMENT_RE.sub("", text)
    text = _HEAD_RE.sub("", text)
    text = _RAW_TEXT_RE.sub("", text)
    text = _PRE_RE.sub(keep_pre, text)
    text = _LINK_RE.sub(_link, text)
    text = _BR_RE.sub(_BREAK, text)
    text = _LI_RE.sub(f"{_LINE}- ", text)
    text = _LINE_RE.sub(_LINE, text)  # first: <div> is the usual tag of deep nesting
    text = _PARAGRAPH_RE.sub(_PARAGRAPH, text)
    text = _CELL_RE.sub(" ", text)
    text = html_lib.unescape(_TAG_RE.sub("", text))
    text = _HTML_WS_RE.sub(" ", text)
    text = _MARKER_RUN_RE.sub(_line_breaks, text)
    text = "\n".join(line.strip(" ") for line in text.split("\n")).strip()
    return _PRE_SLOT_RE.sub(lambda m: pres[int(m.group(1))].strip("\n"), text)
