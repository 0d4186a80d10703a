"""Channel administration: add, set and unset keys, enable, disable, remove. Every edit goes
through config.edit, so the rest of the user's file (comments, order, spacing) stays."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mailbridge.config import channel_keys
from mailbridge.config.edit import ConfigEdit, has_value, set_entry
from mailbridge.config.model import Channel, Config
from mailbridge.config.schema import CHANNEL
from mailbridge.config.secrets import describe
from mailbridge.connectors.drop import make_spool
from mailbridge.domain.checks import require
from mailbridge.errors import NetworkError, NotFoundError, TlsError, UsageError
from mailbridge.services.connectors import plan_for, test_connection


def new_name(path: Path, name: str) -> str:
    """A name for a new channel: one the config accepts, and not yet taken in the file."""
    name = require("channel name", CHANNEL["name"].check, name)
    _not_taken(ConfigEdit(path, missing_ok=True), name)
    return name


def _not_taken(edit: ConfigEdit, name: str) -> None:
    if any(c.get("name") == name for c in edit.channels()):
        raise UsageError(f"a channel called {name} exists already",
                         "pick another --name, or `mailbridge channels remove` it first")


def app_names(path: Path) -> list[str]:
    """The [[m365]] apps of the file, which a Microsoft 365 channel names."""
    found = ConfigEdit(path, missing_ok=True).doc.get("m365")
    return [str(a["name"]) for a in found or () if isinstance(a, dict) and "name" in a]


def add_channel(path: Path, channel: dict[str, Any], test: bool = False) -> Channel:
    """Validate the new channel together with the existing config, test its connection when
    asked, and only then append it to the file (so a failed test writes nothing)."""
    edit = ConfigEdit(path, missing_ok=True)
    _not_taken(edit, channel["name"])
    edit.append_channel(channel)
    added = edit.check().require(channel["name"])
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
    edit.save()
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


def set_enabled(path: Path, name: str, enabled: bool) -> None:
    edit = ConfigEdit(path)
    if edit.channel(name).get("enabled", True) != enabled:  # else the file stays as it is
        edit.set(name, ["enabled"], "true" if enabled else "false")
    edit.save()


def set_keys(path: Path, name: str, pairs: list[tuple[str, str]], mailbox: str | None = None
             ) -> None:
    """Set channel keys (`outgoing.from_name`, `incoming.port`…) or, with `mailbox`, keys of
    one Microsoft 365 mailbox; each value is read as its key's type. All or nothing: the
    file is written only when the whole config then validates."""
    edit = ConfigEdit(path)
    for key, word in pairs:
        channel = edit.channel(name)  # again each time: a set `incoming.type` changes the keys
        spec = _spec(channel, name, key, mailbox)
        if mailbox:
            set_entry(*_mailbox(edit, name, mailbox), key, channel_keys.reading(spec, word))
        else:
            edit.set(name, key.split("."), channel_keys.reading(spec, word))
    edit.save()


def unset_keys(path: Path, name: str, keys: list[str], mailbox: str | None = None
               ) -> list[str]:
    """Remove keys, so that their defaults apply again; returns those that were set."""
    edit = ConfigEdit(path)
    removed = []
    for key in keys:
        channel = edit.channel(name)
        _spec(channel, name, key, mailbox)
        if mailbox:
            array, index = _mailbox(edit, name, mailbox)
            if has_value(array[index], [key]):
                set_entry(array, index, key, None)
                removed.append(key)
        elif has_value(channel, key.split(".")):
            edit.set(name, key.split("."), None)
            removed.append(key)
    edit.save()
    return removed


def _spec(channel: Any, name: str, key: str, mailbox: str | None) -> Any:
    if mailbox:
        return channel_keys.resolve(key, channel_keys.mailbox_paths(),
                                    f"a mailbox of channel {name}")
    return channel_keys.resolve(key, channel_keys.channel_paths(channel), f"channel {name}",
                                channel)


def _mailbox(edit: ConfigEdit, name: str, address: str) -> tuple[Any, int]:
    """The `mailboxes` array of a Microsoft 365 channel and the index of `address` in it."""
    array, listed = _mailboxes(edit, name)
    wanted = address.strip().lower()
    if wanted not in listed:
        raise NotFoundError(f"channel {name} has no mailbox {wanted}",
                            f"see `mailbridge channels show {name}`")
    return array, listed.index(wanted)


def _mailboxes(edit: ConfigEdit, name: str) -> tuple[Any, list[str]]:
    """A Microsoft 365 channel's `mailboxes` array and its addresses, lowercased."""
    incoming = edit.channel(name).get("incoming")
    if not isinstance(incoming, dict) or incoming.get("type") != "m365" \
            or not isinstance(incoming.get("mailboxes"), list):
        raise UsageError(f"channel {name} is not a Microsoft 365 channel: --mailbox is for "
                         "channels with several mailboxes")
    array = incoming["mailboxes"]
    return array, [str(e.get("address", "") if isinstance(e, dict) else e).lower()
                   for e in array]


def set_mailboxes(path: Path, name: str, addresses: list[str], enabled: bool | None) -> None:
    """Enable, disable (`enabled` True/False) or remove (None) single mailboxes of a
    Microsoft 365 channel; all or nothing: an address the channel lacks changes nothing."""
    edit = ConfigEdit(path)
    array, listed = _mailboxes(edit, name)
    wanted = {a.strip().lower() for a in addresses}
    missing = sorted(wanted - set(listed))
    if missing:
        raise NotFoundError(f"channel {name} has no mailbox {', '.join(missing)}",
                            f"see `mailbridge channels show {name}`")
    if enabled is None and wanted >= set(listed):
        raise UsageError(f"channel {name} would have no mailbox left",
                         f"remove the channel instead: `mailbridge channels remove {name}`")
    for index in reversed(range(len(listed))):  # from the end: a deletion keeps the indices
        entry = array[index]
        if listed[index] not in wanted:
            continue
        if enabled is None:
            del array[index]
        elif (entry.get("enabled", True) if isinstance(entry, dict) else True) != enabled:
            set_entry(array, index, "enabled", "true" if enabled else "false")
    edit.save()


def remove_channel(path: Path, name: str) -> None:
    edit = ConfigEdit(path)
    edit.remove_channel(name)
    edit.save()


def summary(channel: Channel) -> dict[str, Any]:
    return {"name": channel.name, "title": channel.title, "enabled": channel.enabled,
            "mode": channel.mode,
            "incoming": channel.incoming["type"],
            "outgoing": channel.outgoing["type"] if channel.outgoing else None,
            "schedule": channel.schedule, "default_queue": channel.default_queue}


def details(config: Config, name: str) -> dict[str, Any]:
    channel = config.require(name)
    hidden = ("incoming", "outgoing", "routes", "apps")  # apps: see [[m365]] in the config
    out = {k: v for k, v in vars(channel).items() if k not in hidden}
    out["routes"] = [{"queue": r.queue, "keywords": list(r.keywords), "priority": r.priority}
                     for r in channel.routes]
    for side in ("incoming", "outgoing"):
        conn = getattr(channel, side)
        out[side] = None if conn is None else {
            k: describe(v) if isinstance(v, dict) else v for k, v in conn.items()
        }
    if channel.incoming["type"] == "drop":
        out["incoming"]["spool"] = str(channel.spool)
    return out
