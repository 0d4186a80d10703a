"""Signatures with formatting. The product documents call the signature "a line with
formatting features": here it is written as simple HTML (`<b>Alice</b><br><a href=…>`) or as
Markdown-like text (`**Alice**`, `*2nd line*`, `[Acme](https://acme.example)`, one line per
line). The HTML part of a mail gets it formatted, cut down to a small safe subset; the plain
part gets a faithful text rendering. A signature without formatting is sent as written."""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser

# What a signature may keep: inline emphasis, links, line and paragraph breaks, small lists,
# an image (a logo) by URL, and a few text styles. Anything else (scripts, event handlers,
# forms, javascript: links, positioning CSS) is removed.
TAGS = frozenset({"a", "b", "strong", "i", "em", "u", "s", "small", "span", "br", "p", "div",
                  "ul", "ol", "li", "hr", "img"})
ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "width", "height"},
              "span": {"style"}, "p": {"style"}, "div": {"style"}}
URL_SCHEMES = frozenset({"http", "https", "mailto", "tel"})
STYLES = frozenset({"color", "font-weight", "font-style", "font-size", "text-decoration"})
_BLOCKS = frozenset({"br", "p", "div", "ul", "ol", "li", "hr"})

_TAG_RE = re.compile(r"</?(" + "|".join(sorted(TAGS)) + r")\b[^<>]*>", re.I)
_BLOCK_RE = re.compile(r"</?(" + "|".join(sorted(_BLOCKS)) + r")\b", re.I)
_MARKUP_CHARS = re.compile(r"[*_\[`~\\<]")  # none of these: nothing to format


@dataclass(frozen=True)
class Signature:
    text: str  # for the plain part
    html: str | None  # a safe HTML fragment; None: no formatting, show the text as it is


def render_signature(source: str) -> Signature:
    if _TAG_RE.search(source):
        return _from_html(source)
    if not _MARKUP_CHARS.search(source):
        return Signature(source, None)
    return _from_markdown(source)


def _from_html(source: str) -> Signature:
    if not _BLOCK_RE.search(source):  # no breaks of its own: keep the lines it was typed in
        source = source.replace("\r\n", "\n").replace("\n", "<br>\n")
    markup = _clean(source)
    return Signature(to_text(markup), markup)


def _from_markdown(source: str) -> Signature:
    from markdown_it import MarkdownIt  # loaded only for a signature that needs it
    from markdown_it.common.utils import escapeHtml

    # inline rules only: a signature has no headings, lists or code blocks, and every line
    # break is kept ("breaks"); raw HTML is not enabled, so "<" is text
    md = MarkdownIt("zero", {"breaks": True}).enable(
        ["emphasis", "strikethrough", "link", "autolink", "escape", "newline"])
    rendered = md.renderInline(source)
    as_is = "<br>\n".join(escapeHtml(line.rstrip()) for line in source.split("\n"))
    if rendered == as_is:  # nothing was formatted
        return Signature(source, None)
    markup = _clean(rendered)
    return Signature(to_text(markup), markup)


def _clean(markup: str) -> str:
    import nh3

    return nh3.clean(markup, tags=set(TAGS), attributes=ATTRIBUTES,
                     url_schemes=set(URL_SCHEMES), filter_style_properties=set(STYLES),
                     link_rel=None).strip()


def to_text(markup: str) -> str:
    """The plain rendering of a (cleaned) signature: its lines and paragraphs, a link as
    `text <url>` unless the text is the address, an image as its alt text, list items with
    "- ", and the "-- " delimiter line with its space (RFC 3676)."""
    parser = _TextParser()
    parser.feed(markup)
    parser.close()
    pieces: list[str] = []
    pending = 0  # newlines owed to the blocks around here: the widest one wins
    for piece in parser.out:
        if isinstance(piece, int):
            pending = max(pending, piece)
            continue
        if not piece.strip() and (pending or not pieces):
            continue  # the source's indentation between blocks
        if pending and pieces:
            pieces.append("\n" * pending)
        pending = 0
        pieces.append(piece)
    lines = [" ".join(line.split()) for line in "".join(pieces).split("\n")]
    lines = ["-- " if line == "--" else line for line in lines]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")
    return text + "\n" if text else ""


_BLOCK_BREAKS = {"p": 2, "div": 1, "ul": 1, "ol": 1, "li": 1, "hr": 1}


class _TextParser(HTMLParser):
    """Text and breaks: a string is text, an int the newlines a block boundary needs."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str | int] = []
        self.links: list[tuple[str, int]] = []  # (href, where its text starts in out)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "br":
            self.out.append("\n")
        elif tag in _BLOCK_BREAKS:
            self.out.append(_BLOCK_BREAKS[tag])
            if tag == "li":
                self.out.append("- ")
            elif tag == "hr":
                self.out.extend(("----", 1))
        elif tag == "img" and found.get("alt"):
            self.out.append(found["alt"] or "")
        elif tag == "a":
            self.links.append((found.get("href") or "", len(self.out)))

    def handle_endtag(self, tag: str) -> None:
        if tag in _BLOCK_BREAKS:
            self.out.append(_BLOCK_BREAKS[tag])
        elif tag == "a" and self.links:
            href, start = self.links.pop()
            label = "".join(p for p in self.out[start:] if isinstance(p, str)).strip()
            target = href.removeprefix("mailto:").removeprefix("tel:")
            if href and target != label:
                self.out.append(f" <{href.removeprefix('mailto:')}>")

    def handle_data(self, data: str) -> None:
        self.out.append(data.replace("\n", " "))  # HTML: a newline in text is a space
