"""A Microsoft 365 mailbox's mail folders and which of them a mode never reads
(domain/folders.py has the rules): the well-known ones by their well-known names (one
`$batch`, whatever the mailbox's language), the rest by name at the top of the mailbox from
the flat `mailFolders/delta` listing, and every folder inside a skipped one."""

from __future__ import annotations

from dataclasses import dataclass

from mailbridge.connectors.graph.http import GraphClient, segment
from mailbridge.domain.folders import WELL_KNOWN, Folder, skipped


@dataclass(frozen=True)
class MailFolders:
    names: dict[str, str]  # id → displayName (a hidden well-known one: its well-known name)
    skipped: dict[str, str]  # id → why the mode never reads it

    @property
    def read(self) -> list[str]:
        """The ids of the listed folders the mode reads."""
        return [fid for fid in self.names if fid not in self.skipped]


def mail_folders(client: GraphClient, mailbox: str, mode: str) -> MailFolders:
    base = f"/users/{segment(mailbox)}/mailFolders"
    parts = client.batch([("GET", f"{base}/{name}?$select=id", None) for name in WELL_KNOWN],
                         mailbox)
    well_known: dict[str, str] = {}
    for name, part in zip(WELL_KNOWN, parts, strict=True):
        if part.ok:
            well_known[part.body["id"]] = name
        elif part.status != 404:  # a folder this mailbox does not have is fine
            raise part.failure(client.label)
    listed = [f for page in client.pages(f"{base}/delta", mailbox,
                                         {"$select": "id,displayName,parentFolderId"})
              for f in page if "@removed" not in f]
    names = {f["id"]: f.get("displayName") or "" for f in listed}
    # A folder whose parent is not listed sits at the top (its parent is the mailbox root).
    folders = [Folder(f["id"], names[f["id"]], f.get("parentFolderId")
                      if f.get("parentFolderId") in names else None,
                      well_known=well_known.get(f["id"])) for f in listed]
    # A well-known folder the listing left out (a hidden one) still keeps its mail out.
    hidden = {fid: name for fid, name in well_known.items() if fid not in names}
    folders += [Folder(fid, name, None, well_known=name) for fid, name in hidden.items()]
    return MailFolders({**names, **hidden}, skipped(folders, mode))
