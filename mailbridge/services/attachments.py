"""A ticket's attachments out of the store: listed, or saved to a directory under safe file
names. The bytes are decoded again from the stored raw message (which is always kept) and
checked against the digest taken when it was stored, so a saved file is the attachment,
byte for byte."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailbridge.config.model import Config
from mailbridge.domain.checks import pick
from mailbridge.domain.filenames import numbered, safe_filename
from mailbridge.domain.message import Attachment
from mailbridge.errors import NotFoundError, UsageError
from mailbridge.store import messages, tickets
from mailbridge.store.db import Store
from mailbridge.store.session import reading

COLUMNS = ("message", "filename", "content_type", "size", "inline", "sha256")
LIST_HINT = "see `mailbridge tickets attachments {ticket}`"


@dataclass(frozen=True)
class Saved:
    attachment: dict[str, Any]
    path: Path


def list_attachments(config: Config, ticket: int) -> list[dict[str, Any]]:
    """Every attachment of the ticket's messages (inline images too), oldest message first."""
    with reading(config.store) as db:
        _existing(db, ticket)
        return messages.attachments_of_ticket(db, ticket)


def save(config: Config, ticket: int, directory: Path, only: str | None = None,
         force: bool = False) -> list[Saved]:
    """Write the ticket's attachments (`only`: those of that name, ignoring case) into
    `directory` (made if missing). Names are made safe (domain/filenames.py) and numbered
    where two are the same, `name (2).pdf`. A file already there is an error, and then
    nothing is written, unless `force` replaces it."""
    with reading(config.store) as db:
        _existing(db, ticket)
        found = messages.attachments_of_ticket(db, ticket)
        if not found:
            raise NotFoundError(f"ticket #{ticket} has no attachments")
        if only is not None:
            name = pick("attachment", only, {a["filename"] for a in found},
                        LIST_HINT.format(ticket=ticket))
            found = [a for a in found if a["filename"].casefold() == name.casefold()]
        plan = [Saved(a, directory / n) for a, n in zip(found, _file_names(found), strict=True)]
        if not force:
            taken = [s.path.name for s in plan if os.path.lexists(s.path)]
            if taken:
                raise UsageError(f"{directory}: {', '.join(taken)} already there; nothing "
                                 "was saved", "pass --force to replace, or save elsewhere")
        contents = _contents(db, found)
    _make(directory)
    for saved in plan:
        _write(saved.path, contents[saved.attachment["message"], saved.attachment["position"]],
               force)
    return plan


def _file_names(found: list[dict[str, Any]]) -> list[str]:
    """A safe, distinct name for each (distinct ignoring case: a file system may be)."""
    used: set[str] = set()
    names = []
    for a in found:
        base = safe_filename(a["filename"], f"attachment-{a['message']}-{a['position'] + 1}")
        name, n = base, 2
        while name.casefold() in used:
            name, n = numbered(base, n), n + 1
        used.add(name.casefold())
        names.append(name)
    return names


def _contents(db: Store, found: list[dict[str, Any]]) -> dict[tuple[int, int], bytes]:
    """Each attachment's bytes from its message's raw source, checked against its digest."""
    out = {}
    for message in dict.fromkeys(a["message"] for a in found):
        parts = _attachments_with_data(bytes(messages.raw_of(db, message)))
        for a in (a for a in found if a["message"] == message):
            data = parts[a["position"]].data if a["position"] < len(parts) else None
            if data is None or hashlib.sha256(data).hexdigest() != a["sha256"]:
                raise UsageError(f"message {message}: its attachments no longer read as they "
                                 "were stored",
                                 "run `mailbridge reprocess --all`, then save them again")
            out[message, a["position"]] = data
    return out


def _attachments_with_data(raw: bytes) -> tuple[Attachment, ...]:
    """A stored message's attachments decoded whole (ingest keeps only their size and
    digest); none when the message no longer parses."""
    from mailbridge.domain.parse import parse  # here: `tickets list` never loads the parser

    try:
        return parse(raw, attachment_data=True).attachments
    except Exception:  # noqa: BLE001 - a parser failure is reported as attachments unreadable
        return ()


def _make(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{directory}: cannot make the directory: {exc.strerror}") from None


def _write(path: Path, data: bytes, replace: bool) -> None:
    """A new file, never written through a link; with `replace` what is there goes first."""
    try:
        if replace and os.path.lexists(path):
            os.unlink(path)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
    except OSError as exc:
        raise UsageError(f"{path}: cannot write it: {exc.strerror}") from None


def _existing(db: Store, ticket: int) -> None:
    if tickets.get(db, ticket) is None:
        raise NotFoundError(f"no ticket #{ticket}", "see `mailbridge tickets list`")
