"""The Microsoft 365 "test mailbox access": for each mailbox, can we read it, can we mark
mail read (a PATCH that sets a message's isRead to the value it already has, so nothing
changes), and if not, why: an application access policy or RBAC scope (ErrorAccessDenied), a
missing mailbox (ErrorInvalidUser, MailboxNotEnabledForRESTAPI)."""

from __future__ import annotations

from typing import Any

from mailbridge.connectors.graph.folders import mail_folders
from mailbridge.connectors.graph.http import GraphClient, segment
from mailbridge.errors import AuthError, MailbridgeError


def probe_mailboxes(client: GraphClient, mailboxes: tuple[str, ...],
                    mode: str) -> list[dict[str, Any]]:
    """Tickets mode marks mail read, so only it checks write access; every mode lists the
    folders it never reads, and why."""
    rows = []
    for mailbox in mailboxes:
        row: dict[str, Any] = {"mailbox": mailbox, "read": None, "mark_read": None,
                               "messages": None, "unread": None, "skipped": None,
                               "problem": None, "hint": None}
        try:
            _probe(client, mailbox, mode, row)
        except AuthError:
            raise  # the app's own sign-in failed: no mailbox can be tested
        except MailbridgeError as exc:
            row["problem"], row["hint"] = exc.message, exc.hint
        rows.append(row)
    return rows


def _probe(client: GraphClient, mailbox: str, mode: str, row: dict[str, Any]) -> None:
    base = f"/users/{segment(mailbox)}"
    inbox = client.get(f"{base}/mailFolders/inbox", mailbox,
                       {"$select": "id,totalItemCount,unreadItemCount"})
    row.update(read="ok", messages=inbox.get("totalItemCount"),
               unread=inbox.get("unreadItemCount"))
    folders = mail_folders(client, mailbox, mode)
    row["skipped"] = [{"folder": folders.names.get(fid, fid), "reason": why}
                      for fid, why in folders.skipped.items()]
    if mode != "tickets":
        row["mark_read"] = "not needed"
        return
    page = client.get(f"{base}/messages", mailbox,
                      {"$top": "1", "$select": "id,isRead"})
    if not page.get("value"):
        row["mark_read"] = "untested (no mail)"
        return
    first = page["value"][0]
    client.patch(f"{base}/messages/{segment(first['id'])}", mailbox,
                 {"isRead": bool(first.get("isRead"))})
    row["mark_read"] = "ok"
