"""A channel's keys as the command line names them (`channels set`, `add-channel --set`):
dotted paths such as `outgoing.from_name`, derived from the schema for the channel's own
connection types, and command-line words read as the value the key's own check accepts."""

from __future__ import annotations

import difflib
import shlex
import tomllib
from collections.abc import Mapping
from typing import Any

from mailbridge.config.edit import toml_text
from mailbridge.config.schema import CHANNEL, INCOMING, MAILBOX, OUTGOING, Invalid, Key, choice
from mailbridge.errors import UsageError

SIDES = {"incoming": INCOMING, "outgoing": OUTGOING}
SECRET_KINDS = ("env", "file", "keyring", "command")


def _table(v: Any) -> Any:
    if not isinstance(v, dict):
        raise Invalid("must be a table")
    return v


def _tables(v: Any) -> Any:
    if not isinstance(v, list) or not all(isinstance(x, dict) for x in v):
        raise Invalid("must be a list of tables")
    return v


def channel_paths(channel: Mapping[str, Any]) -> dict[str, Key]:
    """Every key path `channel` can be given: its own keys, its routes, and the keys of its
    incoming and outgoing connection types (or only `SIDE.type` where there is none yet)."""
    found = {key: spec for key, spec in CHANNEL.items() if key != "name"}
    found["routes"] = Key(_tables)
    for side, specs in SIDES.items():
        found[side] = Key(_table)
        found[f"{side}.type"] = Key(choice(*specs))
        for key, spec in specs.get(_connection_type(channel, side) or "", {}).items():
            found[f"{side}.{key}"] = spec
    return found


def mailbox_paths() -> dict[str, Key]:
    """The keys of one Microsoft 365 mailbox entry."""
    return {key: spec for key, spec in MAILBOX.items() if key != "address"}


def resolve(path: str, known: Mapping[str, Key], owner: str,
            channel: Mapping[str, Any] | None = None) -> Key:
    """The spec of `path`; an unknown path is a usage error with a "did you mean"."""
    if path in known:
        return known[path]
    if path == "name":
        raise UsageError(f"{owner}: the name cannot be changed: the store files its mail "
                         "under it", "add a new channel and remove this one instead")
    raise UsageError(f"{owner} has no key {path}", _suggestion(path, known, channel))


def assign(channel: dict[str, Any], path: str, word: str) -> None:
    """Set `path` of a channel not yet written (a dict) to `word` read as its key's type."""
    spec = resolve(path, channel_paths(channel), f"channel {channel.get('name')}", channel)
    *parents, key = path.split(".")
    node = channel
    for parent in parents:
        node = node.setdefault(parent, {})
    node[key] = tomllib.loads(f"v = {reading(spec, word)}")["v"]


def describe_paths(channel: Mapping[str, Any] | None = None) -> str:
    """The key paths, for help texts: every connection type's keys when `channel` is None."""
    own = ", ".join(k for k in CHANNEL if k != "name")
    parts = [f"Channel keys: {own}, routes."]
    for side, specs in SIDES.items():
        for kind, keys in specs.items():
            parts.append(f"{side}.* with {side}.type {kind}: {', '.join(keys)}.")
    parts.append("With --mailbox: " + ", ".join(mailbox_paths()) + ".")
    return "\n\n".join(parts)


def reading(spec: Key, word: str) -> str:
    """`word` as TOML text for a key: the first of its readings as a TOML value (993, true,
    ["INBOX", "Sent"], { env = "X" }), as plain text, or as a secret reference written
    env:VAR, file:PATH, keyring:NAME or command:PROG ARGS that the key's check accepts; when
    none is accepted, the TOML value or the text, for the loader to report."""
    readings = []
    try:
        parsed = tomllib.loads(f"v = {word}")
        if list(parsed) == ["v"]:  # one value, not `1\nother = 2`
            readings.append((parsed["v"], word.strip()))
    except tomllib.TOMLDecodeError:
        pass
    readings.append((word, toml_text(word)))
    ref = secret_ref(word, strict=False)
    if ref is not None:
        readings.append((ref, toml_text(ref)))
    for value, text in readings:
        try:
            spec.check(value)
        except (Invalid, TypeError, ValueError):
            continue
        return text
    return readings[0][1]


def secret_ref(text: str, strict: bool = True) -> dict[str, Any] | None:
    """`env:VAR`, `file:PATH`, `keyring:NAME` or `command:prog arg…` as a secret reference;
    anything else is an error (or None when not `strict`)."""
    kind, sep, value = text.partition(":")
    if sep and kind in SECRET_KINDS and value.strip():
        return {kind: shlex.split(value) if kind == "command" else value}
    if not strict:
        return None
    raise UsageError(f"secret reference {kind if sep else 'value'} is not understood",
                     "write env:VAR, file:PATH, keyring:NAME or command:PROGRAM ARGS; "
                     "never the secret itself")


def _suggestion(path: str, known: Mapping[str, Key], channel: Mapping[str, Any] | None) -> str:
    side, _, key = path.partition(".")
    kinds = [kind for kind, keys in SIDES.get(side, {}).items() if key in keys]
    if kinds:  # a key of another connection type
        current = _connection_type(channel or {}, side)
        now = f"this channel's is {current}" if current else f"set {side}.type first"
        return f"{path} is for {side}.type {' or '.join(kinds)}; {now}"
    close = difflib.get_close_matches(path, list(known), n=1, cutoff=0.6)
    close = close or [k for k in known if k.rsplit(".", 1)[-1] == path]  # port: incoming.port
    if close:
        return f"did you mean {close[0]}?"
    return "see `mailbridge channels set --help` for every key"


def _connection_type(channel: Mapping[str, Any], side: str) -> str | None:
    conn = channel.get(side)
    kind = conn.get("type") if isinstance(conn, Mapping) else None
    return str(kind) if kind is not None else None
