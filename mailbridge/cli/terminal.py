"""Text a command prints for a person, made harmless for the terminal showing it. Subjects,
names, file names and bodies come from mail, that is from anyone: raw ESC or BEL bytes could
set the window title, clear the screen or plant an OSC 8 hyperlink, and bidi controls can make
text read differently from what it is ("Trojan Source", CVE-2021-42574). Such characters are
shown as escapes (`\\x1b`, `\\u202e`), never passed through or dropped."""

from __future__ import annotations

import re

import typer

# Unicode's Bidi_Control characters: the Arabic letter mark, LRM/RLM, the embeddings and
# overrides (U+202A–U+202E) and the isolates (U+2066–U+2069).
_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_IN_A_LINE = re.compile(f"[\x00-\x08\x0a-\x1f\x7f-\x9f{_BIDI}]")  # a tab is harmless
_IN_LINES = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI}]")  # newlines kept too
# What json.dumps(ensure_ascii=False) leaves raw that a terminal may still act on (it
# escapes U+0000–U+001F itself).
_IN_JSON = re.compile(f"[\x7f-\x9f{_BIDI}]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def for_terminal(text: str, lines: bool = False) -> str:
    """`text` with every control character shown as an escape: one line (a newline would
    forge a line of its own), or with `lines` a text whose line breaks are kept."""
    if lines:
        return _IN_LINES.sub(_escape, text.replace("\r\n", "\n"))
    return _IN_A_LINE.sub(_escape, text)


def json_for_terminal(dumped: str) -> str:
    """JSON text with DEL, C1 and bidi controls written as \\u escapes as well: the same
    data for any parser, nothing a terminal acts on."""
    return _IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", dumped)


def print_line(line: str = "") -> None:
    """One line of a page for a person on stdout (`tickets show`)."""
    typer.echo(for_terminal(line))


def print_text(text: str) -> None:
    """A message's text on stdout, its lines kept."""
    typer.echo(for_terminal(text, lines=True))
