"""The IMAP connection test behind `channels test` and the wizard: log in, list the folders,
and in each folder that would be synced report UIDVALIDITY, counts and one message's header,
read with BODY.PEEK so nothing is marked read."""

from __future__ import annotations

from typing import Any

from mailbridge.connectors.imap_session import ImapSession, ImapSettings

PEEK_HEADER = "BODY.PEEK[HEADER.FIELDS (FROM SUBJECT DATE)]"


def probe(settings: ImapSettings, channel: str) -> dict[str, Any]:
    session = ImapSession(settings, channel)
    try:
        client = session.connect()
        capabilities = sorted(c.decode() for c in client.capabilities())
        listed = session.folders()
        synced = session.synced_folders()
        report = []
        for name in synced:
            info = session.select(name, readonly=True)
            unseen = session.call(name, True, lambda c: c.search(["UNSEEN"]))
            exists = int(info.get(b"EXISTS", 0))
            latest = _latest_header(session, name) if exists else None
            report.append({"folder": name, "uidvalidity": session.uidvalidity,
                           "uidnext": int(info.get(b"UIDNEXT", 0)), "messages": exists,
                           "unread": len(unseen), "latest_header": latest})
    finally:
        session.close()
    return {
        "channel": channel, "host": settings.host, "port": settings.port,
        "security": settings.security, "username": settings.username, "login": "ok",
        "capabilities": capabilities,
        "folders": [{"name": f.name, "flags": list(f.flags), "synced": f.name in synced,
                     "skipped": f.skipped} for f in listed],
        "synced": report,
    }


def _latest_header(session: ImapSession, folder: str) -> str | None:
    last = session.call(folder, True, lambda c: c.search(["UID", "*"]))  # the highest UID
    if not last:
        return None
    data = session.call(folder, True, lambda c: c.fetch([max(last)], [PEEK_HEADER]))
    fields = next(iter(data.values()), {})
    raw = next((v for k, v in fields.items() if k.startswith(b"BODY[")), b"")
    return " ".join(raw.decode("utf-8", "replace").split()) or None
