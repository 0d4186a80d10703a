"""The full-text index of stored messages, one implementation per backend behind one
interface (`Store.fulltext`): FTS5 on SQLite, a tsvector with a GIN index on PostgreSQL.

What is indexed of a message is its subject, its text (for HTML-only mail the text extracted
from the HTML), the sender's name and address, and its attachments' file names: never the
other headers, so a word that only a Received or X- line (or a To: address) carries finds
nothing. Messages are indexed in the transaction that stores them (store/messages.py), so
the index never lags what is committed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mailbridge.domain.search import MARK_END, MARK_START, Query, fold

if TYPE_CHECKING:
    from mailbridge.store.db import Store

# Tables of the index (FTS5 adds shadow tables named after its own): not data of their own,
# made again from the messages (store copy rebuilds them; store info leaves them out).
TABLE_PREFIXES = ("message_fts", "message_search")
SNIPPET_WORDS = 16
# PostgreSQL: a tsvector holds at most 1 MB, so a body is indexed up to this many characters
# (about 60 pages; what is past it is still stored and shown, just not found by search)
POSTGRES_BODY_CHARS = 200_000


class FullText:
    """The index of one store. `matches` and `snippets` read; the rest run inside the
    transaction that changes the messages."""

    def __init__(self, db: Store) -> None:
        self.db = db

    def create(self) -> None:
        """Make the index (migration m010) and fill it from the messages already stored."""
        raise NotImplementedError

    def rebuild(self) -> None:
        """Index every stored message afresh (after `store migrate` copied them in)."""
        raise NotImplementedError

    def add(self, messages: Sequence[int]) -> None:
        """Index these messages as they are stored now (with their attachments)."""
        raise NotImplementedError

    def remove(self, messages: Sequence[int]) -> None:
        """Take these messages out: called before their indexed fields change."""
        raise NotImplementedError

    def matches(self, query: Query, ranked: bool = True) -> tuple[str, list[Any]]:
        """A subquery (and its parameters) of `(message, score)` for every message that
        matches all of `query`'s terms; a higher score is a better match. Not `ranked`: of
        `message` alone (counting needs no score)."""
        raise NotImplementedError

    def snippets(self, query: Query, messages: Sequence[int]) -> dict[int, str]:
        """A short extract of each message around what matched, the matched words between
        MARK_START and MARK_END."""
        raise NotImplementedError


def is_index_table(table: str) -> bool:
    return table.startswith(TABLE_PREFIXES)


def _marks(count: int) -> str:
    return ", ".join("?" * count)


class SqliteFullText(FullText):
    """An FTS5 table over a view of the indexed fields (external content: the text is not
    stored twice). FTS5 reads the view to make snippets, and needs the old values to take a
    message out, so `remove` runs before a message changes. unicode61 folds case and
    diacritics (remove_diacritics 2: also the ones older releases missed)."""

    SCHEMA = """
        CREATE VIEW message_search_source AS
        SELECT m.id AS id, m.subject AS subject, m.text AS body,
               m.from_name || ' ' || m.from_email AS sender,
               coalesce((SELECT group_concat(a.filename, ' ') FROM attachments a
                         WHERE a.message = m.id), '') AS attachments
        FROM messages m;
        CREATE VIRTUAL TABLE message_fts USING fts5(
            subject, body, sender, attachments,
            content='message_search_source', content_rowid='id',
            tokenize='unicode61 remove_diacritics 2')
        """
    COLUMNS = "subject, body, sender, attachments"
    # bm25 weights of the columns above: a word in the subject counts most
    WEIGHTS = "10.0, 1.0, 4.0, 4.0"

    def create(self) -> None:
        self.db.ddl(self.SCHEMA)
        self.rebuild()

    def rebuild(self) -> None:
        self.db.execute("INSERT INTO message_fts(message_fts) VALUES ('rebuild')")

    def add(self, messages: Sequence[int]) -> None:
        self.db.execute(f"INSERT INTO message_fts (rowid, {self.COLUMNS}) "
                        f"SELECT id, {self.COLUMNS} FROM message_search_source "
                        f"WHERE id IN ({_marks(len(messages))})", list(messages))

    def remove(self, messages: Sequence[int]) -> None:
        self.db.execute(f"INSERT INTO message_fts (message_fts, rowid, {self.COLUMNS}) "
                        f"SELECT 'delete', id, {self.COLUMNS} FROM message_search_source "
                        f"WHERE id IN ({_marks(len(messages))})", list(messages))

    def matches(self, query: Query, ranked: bool = True) -> tuple[str, list[Any]]:
        score = f", -bm25(message_fts, {self.WEIGHTS}) AS score" if ranked else ""
        return (f"SELECT rowid AS message{score} FROM message_fts WHERE message_fts MATCH ?",
                [fts5_query(query)])

    def snippets(self, query: Query, messages: Sequence[int]) -> dict[int, str]:
        if not messages:
            return {}
        rows = self.db.execute(
            f"SELECT rowid, snippet(message_fts, -1, ?, ?, '…', {SNIPPET_WORDS}) "
            f"FROM message_fts WHERE message_fts MATCH ? AND rowid IN ({_marks(len(messages))})",
            [MARK_START, MARK_END, fts5_query(query), *messages])
        return dict(rows.fetchall())


def fts5_query(query: Query) -> str:
    """FTS5's syntax for the terms: every term a quoted string (a phrase when it has several
    words), `*` after the ones that are prefixes, all of them required. Words hold only
    letters and digits, so nothing in them is FTS5 syntax."""
    return " ".join('"' + " ".join(t.words) + '"' + ("*" if t.prefix else "")
                    for t in query.terms)


class PostgresFullText(FullText):
    """A tsvector a message in `message_search`, GIN-indexed, made with the 'simple'
    configuration (no stemming, no stop words: any language and script). The text is folded
    by domain.search.fold first (case, diacritics, words only), the same as the query, so
    both backends find the same words; weights rank the subject first, then the sender and
    attachment names, then the body."""

    SCHEMA = """
        CREATE TABLE message_search (
            message BIGINT PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
            document TSVECTOR NOT NULL
        );
        CREATE INDEX message_search_document ON message_search USING GIN (document)
        """
    # the indexed fields of each message: id, subject, body, sender, attachments
    SOURCE = ("(SELECT m.id AS id, m.subject AS subject, m.text AS body, "
              "m.from_name || ' ' || m.from_email AS sender, "
              "coalesce((SELECT string_agg(a.filename, ' ' ORDER BY a.position) "
              "FROM attachments a WHERE a.message = m.id), '') AS attachments "
              "FROM messages m) AS source")
    BATCH = 500
    HEADLINE = (f'StartSel="{MARK_START}", StopSel="{MARK_END}", MaxWords={SNIPPET_WORDS}, '
                'MinWords=6, MaxFragments=1, FragmentDelimiter=" … "')

    def create(self) -> None:
        self.db.ddl(self.SCHEMA)
        self.rebuild()

    def rebuild(self) -> None:
        last = 0
        while True:
            ids = [r[0] for r in self.db.execute(
                f"SELECT id FROM messages WHERE id > ? ORDER BY id LIMIT {self.BATCH}", [last])]
            if not ids:
                return
            self._index(self.db, ids)
            last = ids[-1]

    def add(self, messages: Sequence[int]) -> None:
        """Indexed as the transaction commits, all its messages in two statements: a database
        server answers each in a round trip, and two a message were a fifth of a sync. What
        is indexed is the message as it is then, so a change after the add is indexed too;
        `remove` takes out at once what is indexed already."""
        for message in messages:
            self.db.stage(self._index, message)

    def _index(self, db: Store, messages: Sequence[int]) -> None:
        messages = list(dict.fromkeys(messages))  # an upsert may not touch a row twice
        rows = db.execute(f"SELECT id, subject, body, sender, attachments FROM "
                          f"{self.SOURCE} WHERE id IN ({_marks(len(messages))})",
                          messages).fetchall()
        if not rows:
            return
        db.executemany(
            "INSERT INTO message_search (message, document) VALUES (?, "
            "setweight(to_tsvector('simple', ?), 'A') || setweight(to_tsvector('simple', ?), 'B')"
            " || setweight(to_tsvector('simple', ?), 'B') || "
            "setweight(to_tsvector('simple', ?), 'D')) "
            "ON CONFLICT (message) DO UPDATE SET document = excluded.document",
            [(ident, fold(subject), fold(sender), fold(attachments),
              fold(body[:POSTGRES_BODY_CHARS]))
             for ident, subject, body, sender, attachments in rows])

    def remove(self, messages: Sequence[int]) -> None:
        self.db.execute(f"DELETE FROM message_search WHERE message IN "
                        f"({_marks(len(messages))})", list(messages))

    def matches(self, query: Query, ranked: bool = True) -> tuple[str, list[Any]]:
        text = tsquery(query)
        if not ranked:
            return ("SELECT message FROM message_search "
                    "WHERE document @@ to_tsquery('simple', ?)", [text])
        return ("SELECT message, ts_rank(document, to_tsquery('simple', ?)) AS score "
                "FROM message_search WHERE document @@ to_tsquery('simple', ?)", [text, text])

    def snippets(self, query: Query, messages: Sequence[int]) -> dict[int, str]:
        """ts_headline over the subject, sender, attachment names and text (as stored, so the
        snippet keeps its case and accents; a word matched only through folding, `cafe` for
        `Café`, is then not marked)."""
        if not messages:
            return {}
        rows = self.db.execute(
            f"SELECT id, ts_headline('simple', concat_ws(' · ', subject, sender, "
            f"nullif(attachments, ''), left(body, {POSTGRES_BODY_CHARS})), "
            f"to_tsquery('simple', ?), ?) FROM {self.SOURCE} "
            f"WHERE id IN ({_marks(len(messages))})",
            [tsquery(query), self.HEADLINE, *messages])
        return dict(rows.fetchall())


def tsquery(query: Query) -> str:
    """to_tsquery's syntax for the terms: each folded word a quoted lexeme, a phrase's words
    joined by `<->` (next to each other), `:*` after a prefix, the terms joined by `&`.
    Folded words hold only letters and digits, so nothing in them is tsquery syntax."""
    parts = []
    for term in query.terms:
        words = fold(" ".join(term.words)).split()
        if words:
            parts.append(" <-> ".join(f"'{w}'" for w in words) + (":*" if term.prefix else ""))
    return " & ".join(parts)
