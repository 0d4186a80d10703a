"""The MIME structure of plainly well-formed mail, found by searching the text for its
boundaries instead of feeding it through the stdlib's parser a line at a time.

`split(text, policy)` returns the `email.message.Message` tree that
`email.feedparser.FeedParser(policy=policy)` makes of the same text, or None where the text is
anything but plain: a header line the stdlib would note a defect for, a part without the
blank line after its headers, a multipart whose boundary is missing, never opened or never
closed, two boundary lines in a row, a bare CR, a delivery-status or digest part, nesting
deeper than `MAX_DEPTH`. The caller then has the stdlib parse it, so the tree is the same
either way; only the time differs. The stdlib's parser spends a few microseconds of Python
on every line of every part (a third of parsing ordinary mail); here a body is one slice
and a multipart's boundaries are found by `str.find`.

What the stdlib does and this repeats, so that the trees are equal (tests/test_mime_split.py
compares them): a line that is a boundary ends whatever part or enclosed message is being
read, at any depth; the line break before a boundary belongs to the boundary (it is taken
off the part's payload, or off a nested multipart's epilogue, which becomes None if that
leaves it empty); the preamble is None when the first boundary opens the body; the
epilogue is everything after the closing boundary's line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from email.message import Message
from email.policy import Compat32

MAX_DEPTH = 32
# A header line the stdlib reads without a defect: a field name, then a colon.
_NAME_RE = re.compile(r"[\041-\071\073-\176]+:")
# The rest of a boundary line after its separator (feedparser's pattern); parse.py's patch of
# the stdlib's parser matches boundary lines with it too.
BOUNDARY_TAIL_RE = re.compile(r"(?P<end>--)?(?P<ws>[ \t]*)(?P<linesep>\r\n|\r|\n)?$")


class _Unusual(Exception):
    """The text is not plain enough for this splitter: the stdlib parses it."""


def split(text: str, policy: Compat32) -> Message | None:
    """The message tree of `text`, or None for the stdlib to make it."""
    if "\r" in text and text.count("\r") != text.count("\r\n"):
        return None  # a bare CR ends a line for the stdlib: not worth following
    try:
        return _Splitter(text, policy).message(0, len(text), 0, top=True)[0]
    except Exception:  # noqa: BLE001 - _Unusual, or the stdlib's header methods on hostile
        return None  # values: its parser meets them too, and the caller handles what it raises


class _Splitter:
    def __init__(self, text: str, policy: Compat32) -> None:
        self.text = text
        self.policy = policy
        self.factory = policy.message_factory or Message

    def message(self, start: int, end: int, depth: int, top: bool = False
                ) -> tuple[Message, Message]:
        """The message in text[start:end], and the last message of it that the stdlib's
        parser made (the one whose trailing line break a boundary after it takes)."""
        if depth > MAX_DEPTH:
            raise _Unusual
        msg = self.factory(policy=self.policy)
        body = self._headers(msg, start, end, top)
        ctype = msg.get_content_type()  # (always "maintype/subtype")
        if ctype == "message/delivery-status":
            raise _Unusual
        if ctype.startswith("message/"):
            enclosed, last = self.message(body, end, depth + 1)
            msg.attach(enclosed)
            return msg, last
        if ctype.startswith("multipart/"):
            self._multipart(msg, ctype, body, end, depth)
            return msg, msg
        msg.set_payload(self.text[body:end])
        return msg, msg

    def _headers(self, msg: Message, pos: int, end: int, top: bool) -> int:
        """Sets the header fields of text[pos:end] on `msg`; where its body starts."""
        text, lines = self.text, []
        while True:
            eol = text.find("\n", pos, end)
            if eol < 0:
                # No blank line: a message of headers only (at the very end of the text the
                # stdlib keeps a last line without a line break apart; not followed here).
                raise _Unusual
            line = text[pos:eol + 1]
            pos = eol + 1
            if line in ("\n", "\r\n"):
                break
            if line[0] in " \t":
                if not lines:
                    raise _Unusual
                lines.append(line)
                continue
            if not _NAME_RE.match(line):
                raise _Unusual  # an envelope "From " line, a nameless or broken field
            if lines:
                msg.set_raw(*self.policy.header_source_parse(lines))
            lines = [line]
        if lines:
            msg.set_raw(*self.policy.header_source_parse(lines))
        elif top:
            raise _Unusual  # (the caller refuses mail without headers anyway)
        return pos

    def _multipart(self, msg: Message, ctype: str, pos: int, end: int, depth: int) -> None:
        boundary = msg.get_boundary()
        if boundary is None or ctype == "multipart/digest" or str(
                msg.get("content-transfer-encoding", "8bit")).lower() not in (
                    "7bit", "8bit", "binary"):
            raise _Unusual
        delimiters = list(self._delimiters("--" + boundary, pos, end))
        closing = next((i for i, (_, _, last) in enumerate(delimiters) if last), None)
        if closing is None or closing == 0:
            raise _Unusual  # never closed, or closed before it opened
        first = delimiters[0][0]
        if first > pos:
            msg.preamble = _without_line_break(self.text[pos:first])
        for (_, after, _), (following, _, _) in zip(delimiters[:closing],
                                                    delimiters[1:closing + 1], strict=True):
            # (Two boundary lines in a row, which the stdlib reads as one, make an empty part
            # here, which has no blank line after its headers: left to the stdlib.)
            part, last = self.message(after, following, depth + 1)
            msg.attach(part)
            _take_line_break(last)
        msg.epilogue = self.text[delimiters[closing][1]:end]

    def _delimiters(self, separator: str, pos: int, end: int
                    ) -> Iterator[tuple[int, int, bool]]:
        """(start, end, closing) of each boundary line in text[pos:end] (which starts a
        line), up to the closing one. Only a separator at a line's start is looked at."""
        text, after_newline = self.text, "\n" + separator
        found = pos if text.startswith(separator, pos, end) else _next_line(
            text.find(after_newline, pos, end))
        while found >= 0:
            eol = text.find("\n", found, end)
            line_end = end if eol < 0 else eol + 1
            tail = BOUNDARY_TAIL_RE.match(text, found + len(separator), line_end)
            if tail is not None:
                closing = bool(tail.group("end"))
                yield found, line_end, closing
                if closing:
                    return
            if eol < 0:
                return
            found = _next_line(text.find(after_newline, eol, end))


def _next_line(newline: int) -> int:
    return newline + 1 if newline >= 0 else -1


def _take_line_break(last: Message) -> None:
    """The line break before a boundary is the boundary's (RFC 2046)."""
    if last.is_multipart():  # (here only a multipart: `last` is never a message/* part)
        epilogue = last.epilogue
        if epilogue == "":
            last.epilogue = None
        elif epilogue is not None:
            last.epilogue = _without_line_break(epilogue)
    elif isinstance(last._payload, str):  # noqa: SLF001 - as the stdlib's parser does
        last._payload = _without_line_break(last._payload)  # noqa: SLF001


def _without_line_break(text: str) -> str:
    if text.endswith("\r\n"):
        return text[:-2]
    return text[:-1] if text.endswith(("\n", "\r")) else text
