"""The folder rules shared by IMAP and Microsoft 365 (domain/folders.py), as pure code, and
how an IMAP LIST line becomes a folder for them (a namespace prefix, Gmail's container)."""

from __future__ import annotations

import pytest

from mailbridge.connectors.imap_session import describe_folder
from mailbridge.domain.folders import Folder, skipped


def top(name: str, *flags: str, well_known: str | None = None) -> Folder:
    return Folder(name, name, None, flags, well_known)


@pytest.mark.parametrize(("folder", "tickets", "engagements", "sales"), [
    (top("Sent", "\\HasNoChildren", "\\Sent"), "sent (SPECIAL-USE \\Sent)", None, None),
    (top("Trash", "\\Trash"), "deleted items (SPECIAL-USE \\Trash)", None,
     "deleted items (SPECIAL-USE \\Trash)"),
    (top("x", well_known="clutter"), None, "clutter (well-known name clutter)", None),
    (top("Unterhaltungsverlauf"), *["conversation history (its name)"] * 3),
    (top("Éléments supprimés"), "deleted items (its name)", None, "deleted items (its name)"),
    (top("[Gmail]/All Mail", "\\All"), *["all mail (SPECIAL-USE \\All)"] * 3),
    (top("Projects"), None, None, None),
])
def test_each_mode_reads_what_its_document_allows(folder, tickets, engagements, sales):
    assert [skipped([folder], mode).get(folder.key) for mode in
            ("tickets", "engagements", "sales")] == [tickets, engagements, sales]


def test_names_count_at_the_top_only_and_a_skipped_folder_takes_its_subfolders_along():
    folders = [top("Projects"), Folder("Projects/Notes", "Notes", "Projects"),
               top("Sync Issues"), Folder("Sync Issues/Conflicts", "Conflicts", "Sync Issues"),
               Folder("Sync Issues/Conflicts/Old", "Old", "Sync Issues/Conflicts")]
    assert skipped(folders, "engagements") == {
        "Sync Issues": "sync issues (its name)",
        "Sync Issues/Conflicts": "inside Sync Issues: sync issues (its name)",
        "Sync Issues/Conflicts/Old": "inside Sync Issues: sync issues (its name)"}


@pytest.mark.parametrize(("name", "delimiter", "prefix", "own", "parent"), [
    ("INBOX.Calendar", b".", "INBOX.", "Calendar", None),  # Courier-style namespace
    ("INBOX.Calendar.Birthdays", b".", "INBOX.", "Birthdays", "INBOX.Calendar"),
    ("[Gmail]/Chats", b"/", "", "Chats", None),  # Gmail's chat history
    ("Projects/Notes", b"/", "", "Notes", "Projects"),
    ("INBOX", None, "", "INBOX", None),
])
def test_an_imap_folder_is_placed_under_its_parent(name, delimiter, prefix, own, parent):
    found = describe_folder(name, (b"\\HasNoChildren",), delimiter, prefix)
    assert (found.key, found.name, found.parent, found.flags) == (
        name, own, parent, ("\\HasNoChildren",))
