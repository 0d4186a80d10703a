"""Channel administration: add (appending, so comments survive), enable, disable, remove."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from mailbridge.config.load import read_toml, validate
from mailbridge.config.model import Channel, Config
from mailbridge.config.secrets import describe
from mailbridge.config.write import append_channel, save_config
from mailbridge.connectors.drop import make_spool
from mailbridge.errors import NetworkError, NotFoundError, TlsError, UsageError
from mailbridge.services.connectors import plan_for, test_connection


def add_channel(path: Path, channel: dict[str, Any], test: bool = False) -> Channel:
    """Validate the new channel together with the existing config, test its connection when
    asked, and only then append it to the file (so a failed test writes nothing)."""
    data = read_toml(path) if path.exists() else {}
    if any(c.get("name") == channel["name"] for c in data.get("channel", [])):
        raise UsageError(f"a channel called {channel['name']} exists already",
                         "pick another --name, or `mailbridge channels remove` it first")
    candidate = {**data, "channel": [*data.get("channel", []), channel]}
    added = validate(candidate, path).require(channel["name"])
    plan_for(added)  # refuses a channel that could never sync (engagements without an owner)
    if added.incoming["type"] == "drop":
        make_spool(added.spool)  # a drop channel's "connection" is its spool: make it first
    if test:
        tested = test_connection(added)
        failed = [f"{r['mailbox']}: {r['problem']}" for r in tested.get("mailboxes", [])
                  if r.get("problem")]
        if failed:  # Microsoft 365 reports each mailbox instead of raising
            raise UsageError("mailbox test failed: " + "; ".join(failed),
                             "fix the access (or the address), or pass --skip-test")
        if added.outgoing is not None:
            from mailbridge.services.outgoing import test_outgoing

            test_outgoing(added)
    append_channel(path, channel)
    return added


def add_first_working(path: Path, candidates: list[dict[str, Any]]) -> Channel:
    """Add the first candidate whose servers answer (guessed host names): a host that does
    not exist or does not speak TLS is skipped; a refused login stops, since the server is
    then the right one and the password is not."""
    tried = []
    for channel in candidates:
        try:
            return add_channel(path, channel, test=True)
        except (NetworkError, TlsError) as exc:
            tried.append(exc.message)
    raise UsageError("no guessed server answered: " + "; ".join(tried),
                     "pass --host (and --smtp-host) from your provider's help pages")


def parse_secret_ref(text: str) -> dict[str, Any]:
    """`env:VAR`, `file:PATH`, `keyring:NAME` or `command:prog arg…` as a secret reference."""
    kind, sep, value = text.partition(":")
    if not sep or kind not in ("env", "file", "keyring", "command") or not value.strip():
        raise UsageError(f"secret reference {kind if sep else 'value'} is not understood",
                         "write env:VAR, file:PATH, keyring:NAME or command:PROGRAM ARGS; "
                         "never the secret itself")
    return {kind: shlex.split(value) if kind == "command" else value}


def _edit(path: Path, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    data = read_toml(path)
    for channel in data.get("channel", []):
        if channel.get("name") == name:
            return data, channel
    raise NotFoundError(f"no channel called {name}", "see `mailbridge channels list`")


def set_enabled(path: Path, name: str, enabled: bool) -> None:
    data, channel = _edit(path, name)
    channel["enabled"] = enabled
    save_config(path, data)


def set_mailboxes(path: Path, name: str, addresses: list[str], enabled: bool | None) -> None:
    """Enable, disable (`enabled` True/False) or remove (None) single mailboxes of a
    Microsoft 365 channel; all or nothing: an address the channel lacks changes nothing."""
    data, channel = _edit(path, name)
    incoming = channel.get("incoming") or {}
    if incoming.get("type") != "m365":
        raise UsageError(f"channel {name} is not a Microsoft 365 channel: --mailbox is for "
                         "channels with several mailboxes")
    wanted = {a.strip().lower() for a in addresses}
    kept, found = [], set()
    for entry in incoming.get("mailboxes") or []:
        table = {"address": entry} if isinstance(entry, str) else dict(entry)
        address = str(table.get("address", "")).lower()
        if address in wanted:
            found.add(address)
            if enabled is None:
                continue
            table["enabled"] = enabled
            entry = table
        kept.append(entry)
    missing = sorted(wanted - found)
    if missing:
        raise NotFoundError(f"channel {name} has no mailbox {', '.join(missing)}",
                            f"see `mailbridge channels show {name}`")
    if not kept:
        raise UsageError(f"channel {name} would have no mailbox left",
                         f"remove the channel instead: `mailbridge channels remove {name}`")
    incoming["mailboxes"] = kept
    save_config(path, data)


def remove_channel(path: Path, name: str) -> None:
    data, channel = _edit(path, name)
    data["channel"].remove(channel)
    save_config(path, data)


def summary(channel: Channel) -> dict[str, Any]:
    return {"name": channel.name, "enabled": channel.enabled, "mode": channel.mode,
            "incoming": channel.incoming["type"],
            "outgoing": channel.outgoing["type"] if channel.outgoing else None,
            "schedule": channel.schedule, "default_queue": channel.default_queue}


def details(config: Config, name: str) -> dict[str, Any]:
    channel = config.require(name)
    hidden = ("incoming", "outgoing", "routes", "apps")  # apps: see [[m365]] in the config
    out = {k: v for k, v in vars(channel).items() if k not in hidden}
    out["routes"] = [{"queue": r.queue, "keywords": list(r.keywords)} for r in channel.routes]
    for side in ("incoming", "outgoing"):
        conn = getattr(channel, side)
        out[side] = None if conn is None else {
            k: describe(v) if isinstance(v, dict) else v for k, v in conn.items()
        }
    if channel.incoming["type"] == "drop":
        out["incoming"]["spool"] = str(channel.spool)
    return out
