"""The query language of `tickets search` (and engagements, opportunities), parsed once into
terms that each store backend turns into its own full-text syntax.

A query is words, all of which must match: `printer toner`. `"exact words"` is a phrase (the
words next to each other, in order); `toner*` matches words that begin with `toner`. A word
is a run of letters and digits: everything else (punctuation, operators of any search
syntax, quotes left open) separates words and never reaches the database as syntax, so no
query can make it fail. A bare token with punctuation inside (`alice@example.com`,
`re-install`) is a phrase of its words, as the index splits the text it indexes.

Words are compared without case or diacritics (`cafe` finds `Café`): `fold` is how both
sides are normalised where a backend does not do it itself."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

WORD_RE = re.compile(r"[^\W_]+")
_TOKEN_RE = re.compile(r'"([^"]*)"?|(\S+)')  # a quoted phrase (maybe never closed), or a token

# Around the matched words of a snippet; characters of Unicode's private use area, which
# mail text does not carry (fold() removes any that it does from what is indexed).
MARK_START, MARK_END = "\ue000", "\ue001"


@dataclass(frozen=True)
class Term:
    words: tuple[str, ...]  # one word, or a phrase
    prefix: bool = False  # the last word is a prefix


@dataclass(frozen=True)
class Query:
    text: str
    terms: tuple[Term, ...]


def parse(text: str) -> Query:
    """`text` as terms; no terms when it has no word at all (the caller says so)."""
    terms = []
    for quoted, bare in _TOKEN_RE.findall(text):
        words = tuple(WORD_RE.findall(quoted if quoted else bare))
        if words:
            prefix = not quoted and bare.endswith("*") and bool(WORD_RE.search(bare[-2:-1]))
            terms.append(Term(words, prefix))
    return Query(text, tuple(terms))


class _Marks(dict[int, int | None]):
    """str.translate's table for dropping combining marks (after NFKD, the diacritics): a
    mark maps to None, any other character to itself, each looked up once (a generator
    asking unicodedata about every character took a tenth of a PostgreSQL sync's CPU). Up to
    CACHED characters are kept, so hostile text cannot grow it without bound."""

    CACHED = 65536

    def __missing__(self, code: int) -> int | None:
        kept = None if unicodedata.combining(chr(code)) else code
        if len(self) < self.CACHED:
            self[code] = kept
        return kept


_MARKS = _Marks()


def fold(text: str) -> str:
    """Lowercase, without diacritics (é → e, ß stays ß's casefold "ss"), words only.

    Folded a whitespace-separated token at a time, each distinct token once (_FOLDED; the
    text a PostgreSQL store indexes is folded here, and folding each text whole was a
    quarter of that store's CPU in a sync; on the shared corpora's mail, 180 → 133 ms the
    first time and 85 ms after). The words are those of the whole text folded at once:
    whitespace separates words before and after folding, casefold and NFKD work a
    character at a time, and what NFKD reorders (combining marks) is dropped."""
    tokens = text.split()
    folded = list(map(_FOLDED.get, tokens))
    if None in folded:
        folded = [_FOLDED.fold(token) if done is None else done
                  for token, done in zip(tokens, folded, strict=True)]
    return " ".join(filter(None, folded))


class _Folded(dict[str, str]):
    """Tokens folded before, each of up to LONGEST characters folded into at most twice
    that, up to KEPT of them, all forgotten when full (mail's words repeat; a few MB at
    most, whatever the text)."""

    KEPT, LONGEST = 20000, 40

    def fold(self, token: str) -> str:
        decomposed = unicodedata.normalize("NFKD", token.casefold())
        if not decomposed.isascii():
            decomposed = decomposed.translate(_MARKS)
        folded = " ".join(WORD_RE.findall(decomposed))
        if len(token) <= self.LONGEST and len(folded) <= 2 * self.LONGEST:
            if len(self) >= self.KEPT:
                self.clear()
            self[token] = folded
        return folded


_FOLDED = _Folded()


def segments(snippet: str) -> list[tuple[str, bool]]:
    """A snippet as (text, matched) pieces, in order."""
    pieces: list[tuple[str, bool]] = []
    for i, part in enumerate(re.split(f"[{MARK_START}{MARK_END}]", snippet)):
        if part:
            pieces.append((part, i % 2 == 1))
    return pieces


def unmarked(snippet: str) -> str:
    return snippet.replace(MARK_START, "").replace(MARK_END, "")
