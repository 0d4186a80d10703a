"""Edits of the user's config file that keep everything they did not ask to change.

The file is parsed with tomlkit, which keeps its text: an edit touches only the keys it
names, while comments, order, spacing and quoting stay as the user wrote them, and a changed
value keeps its line's comment in the same column. The text about to be written is checked
by the loader's own validation, then replaces the file atomically (mode 600), so a rejected
edit leaves the file as it was. Every command that writes the config goes through here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.container import Container
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import AoT, Array, Comment, InlineTable, Item, Null, Table, Whitespace

from mailbridge.config.load import parse_toml, read_text, validate
from mailbridge.config.model import Config
from mailbridge.config.write import write_text_atomic
from mailbridge.domain.checks import pick
from mailbridge.errors import ConfigError, UsageError

SECTIONS = ("incoming", "outgoing")  # a new channel's tables written as [channel.…] sections


class ConfigEdit:
    """One edit of the config file: change `doc` (a tomlkit document), then `save()`."""

    def __init__(self, path: Path, missing_ok: bool = False) -> None:
        self.path = path
        self.original = "" if missing_ok and not path.exists() else read_text(path)
        self.doc = _parse(self.original, path)

    @property
    def text(self) -> str:
        return self.doc.as_string()

    def check(self) -> Config:
        """Validate the text as it would be written, with the loader's own code."""
        return validate(parse_toml(self.text, self.path), self.path)

    def save(self) -> Config:
        """Validate, then write (nothing is written when the text did not change)."""
        config = self.check()
        if self.text != self.original:
            write_text_atomic(self.path, self.text)
        return config

    def channel(self, name: str) -> Table | InlineTable:
        tables = [t for t in self.channels() if isinstance(t.get("name"), str)]
        found = pick("channel", name, [t["name"] for t in tables],
                     "see `mailbridge channels list`")
        return next(t for t in tables if t["name"] == found)

    def channels(self) -> list[Table | InlineTable]:
        found = self.doc.get("channel")
        if not isinstance(found, list):
            return []
        return [t for t in found if isinstance(t, Table | InlineTable)]

    def append_channel(self, channel: dict[str, Any]) -> None:
        """Add a [[channel]] block after everything else in the file (or an inline table to
        a non-empty `channel = [...]`)."""
        if "channel" in self.doc and not isinstance(self.doc.item("channel"), AoT):
            if self.doc["channel"]:
                self.doc["channel"].append(_value(toml_text(channel)))
                return
            self.doc.remove("channel")  # `channel = []`
        current = self.text.rstrip("\n")
        block = _channel_block(channel)
        self.doc = _parse(current + ("\n\n" if current.strip() else "") + block, self.path)

    def remove_channel(self, name: str) -> None:
        """Remove the channel's block: the lines from its [[channel]] header to the next
        header, except comment lines directly above that next header, which describe it."""
        table = self.channel(name)
        aot = self.doc.item("channel")
        if not isinstance(aot, AoT):  # `channel = [{ … }]`
            aot.remove(table)
            return
        keep = _comments_above_next_header(table)
        index = next(i for i, t in enumerate(aot.body) if t is table)
        position = next(i for i, (k, _) in enumerate(self.doc.body) if k == "channel")
        following = None
        if len(aot) > 1:
            del aot[index]
            following = aot.body[index] if index < len(aot.body) else None
        else:
            self.doc.remove("channel")  # an empty array of tables would print `channel = []`
        if following is None:  # an empty table is falsy: compare with None
            following = _next_table(self.doc.body[position + 1:])
        if following is not None:
            following.trivia.indent = "".join(c.as_string() for c in keep) \
                + following.trivia.indent
        else:  # the removed block ended the file
            for comment in keep:
                self.doc.append(None, comment)

    def set(self, name: str, path: Sequence[str], text: str | None) -> None:
        """Set the channel's key at `path` (["incoming", "port"]) to the TOML value `text`,
        creating missing tables on the way; `text` None removes the key."""
        table = self.channel(name)
        rebuilt = _apply(table, list(path), None if text is None else _value(text))
        if rebuilt is not None:  # a channel written as an inline table
            array = self.doc.item("channel")
            array[next(i for i, t in enumerate(array) if t is table)] = rebuilt


def create_config(path: Path, text: str) -> Config:
    """Write a whole new config (`init`, `demo`), validated first like any edit."""
    config = validate(parse_toml(text, path), path)
    write_text_atomic(path, text)
    return config


def has_value(table: Table | InlineTable, path: Sequence[str]) -> bool:
    node: Any = table
    for key in path:
        if not isinstance(node, Table | InlineTable) or key not in node:
            return False
        node = node[key]
    return True


def set_entry(array: Array, index: int, key: str, text: str | None) -> None:
    """Set (or remove, `text` None) a key of the inline table at `array[index]`; an entry that
    is a bare string becomes `{ address = "…", key = … }`."""
    entry = array[index]
    if not isinstance(entry, InlineTable):
        entry = _inline([("address", _render(entry))], padded=True)
    array[index] = _apply(entry, [key], None if text is None else _value(text))


def toml_text(value: Any) -> str:
    """`value` as TOML text, tables inline and padded as `{ key = value }`."""
    if isinstance(value, dict):
        return _inline_text([(k, toml_text(v)) for k, v in value.items()], padded=True)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_text(v) for v in value) + "]"
    return tomlkit.item(value).as_string()


# -- internals ----------------------------------------------------------------------------------

def _parse(text: str, path: Path) -> tomlkit.TOMLDocument:
    parse_toml(text, path)  # a broken file gets the loader's message
    try:
        return tomlkit.parse(text)
    except TOMLKitError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None


def _channel_block(channel: dict[str, Any]) -> str:
    lines = ["[[channel]]"]
    lines += [f"{k} = {toml_text(v)}" for k, v in channel.items()
              if not (k in SECTIONS and isinstance(v, dict))]
    for section in SECTIONS:
        if isinstance(channel.get(section), dict):
            lines += ["", f"[channel.{section}]"]
            lines += [f"{k} = {toml_text(v)}" for k, v in channel[section].items()]
    return "\n".join(lines) + "\n"


def _value(text: str) -> Item:
    return tomlkit.parse(f"v = {text}\n").item("v")


def _render(item: Any) -> str:
    return item.as_string().strip() if isinstance(item, Item) else toml_text(item)


def _apply(node: Any, path: list[str], new: Item | None) -> Any:
    """Set (`new` None: remove) `path` below `node`. A table is changed in place (None is
    returned); an inline table is rebuilt, and the rebuilt one returned for its parent."""
    key, rest = path[0], path[1:]
    if isinstance(node, InlineTable):
        return _apply_inline(node, key, rest, new)
    if not isinstance(node, Table):
        raise UsageError(f"cannot set {key}: its parent is not a table")
    if not rest:
        if new is None:
            _delete(node, key)
        elif key in node:
            _replace(node, key, new)
        else:
            _insert(node, key, new)
        return None
    if key not in node:
        if new is None:
            return None
        _add_table(node, key)
    child = node.value.item(key)
    rebuilt = _apply(child, rest, new)
    if rebuilt is not None:
        _replace(node, key, rebuilt)
    return None


def _apply_inline(node: InlineTable, key: str, rest: list[str], new: Item | None
                  ) -> InlineTable:
    pairs = [(k.key, v.as_string().strip()) for k, v in node.value.body if k is not None]
    current = node.get(key)
    if rest:
        child = current if current is not None else _inline([], padded=True)
        new = _apply(child, rest, new) if isinstance(child, InlineTable | Table) else None
        if new is None:
            raise UsageError(f"cannot set {key}.{rest[0]}: {key} is not a table")
    if new is None:
        pairs = [(k, v) for k, v in pairs if k != key]
    elif current is not None:
        pairs = [(k, _render(new) if k == key else v) for k, v in pairs]
    else:
        pairs.append((key, _render(new)))
    padded = node.as_string().startswith("{ ") or not node.value.body
    return _inline(pairs, padded)


def _inline(pairs: list[tuple[str, str]], padded: bool) -> InlineTable:
    return _value(_inline_text(pairs, padded))


def _inline_text(pairs: list[tuple[str, str]], padded: bool) -> str:
    pad = " " if padded and pairs else ""
    return "{" + pad + ", ".join(f"{k} = {v}" for k, v in pairs) + pad + "}"


def _replace(table: Table, key: str, new: Item) -> None:
    """Replace a value in place; its line's comment stays in the same column."""
    old = table.value.item(key)
    width = len(old.as_string())
    table[key] = new
    stored = table.value.item(key)
    if isinstance(stored, Table | AoT) or not stored.trivia.comment:
        return
    spaces = stored.trivia.comment_ws
    if spaces.strip(" "):
        return
    shift = len(stored.as_string()) - width
    stored.trivia.comment_ws = " " * max(1, len(spaces) - shift)


def _insert(table: Table, key: str, new: Item) -> None:
    """Add a key after the table's last key = value line and the indented comment lines
    that continue its comment: before the comments and sub-tables that follow it."""
    body = table.value.body
    last = max((i for i, (k, v) in enumerate(body)
                if k is not None and not isinstance(v, Table | AoT)), default=-1)
    end = _continued_to(body, last) if last >= 0 else 0
    new.trivia.indent = ""
    new.trivia.trail = "\n"
    if end < len(body):
        table.value._insert_at(end, key, new)
    else:
        table.append(key, new)


def _delete(table: Table, key: str) -> None:
    """Remove a key with its line, and the indented comment lines that continue its
    trailing comment."""
    if key not in table:
        return
    body = table.value.body
    index = next(i for i, (k, _) in enumerate(body) if k is not None and k.key == key)
    end = _continued_to(body, index)
    del table[key]
    for j in range(index + 1, end):
        body[j] = (None, Null())


def _continued_to(body: list[tuple[Any, Item]], index: int) -> int:
    """The index after the key line at `index` and the indented comment lines under it that
    continue its trailing comment (a comment written over several lines)."""
    item = body[index][1]
    if isinstance(item, Table | AoT) or not item.trivia.comment:
        return index + 1
    end = index + 1
    while end < len(body) and body[end][0] is None and isinstance(body[end][1], Comment) \
            and body[end][1].trivia.indent:
        end += 1
    return end


def _add_table(table: Table, key: str) -> None:
    """Add an empty [parent.key] section at the end of `table`; blank lines and comments that
    ended the table (they sit above the next header) move below the new section."""
    tail = _tail_container(table)
    moved = _detach_tail(tail)
    section = tomlkit.table()
    table.append(key, section)
    for item in moved:
        section.value.body.append((None, item))


def _tail_container(table: Table) -> Container:
    """The container whose text ends the table: its last sub-table's, recursively."""
    container = table.value
    while True:
        last = next((v for k, v in reversed(container.body) if not isinstance(v, Null)), None)
        if isinstance(last, Table):
            container = last.value
        elif isinstance(last, AoT) and last.body:
            container = last.body[-1].value
        else:
            return container


def _trailing(container: Container) -> int:
    """Index where the run of comments and blank lines ending `container` starts."""
    body = container.body
    start = len(body)
    while start and body[start - 1][0] is None \
            and isinstance(body[start - 1][1], Comment | Whitespace | Null):
        start -= 1
    return start


def _detach_tail(container: Container) -> list[Item]:
    """Take the blank lines and comments after the container's last blank line (and that
    blank line) out of it."""
    body = container.body
    start = _trailing(container)
    blanks = [i for i in range(start, len(body)) if isinstance(body[i][1], Whitespace)]
    if not blanks:
        return []
    moved = [v for _, v in body[blanks[0]:] if not isinstance(v, Null)]
    for i in range(blanks[0], len(body)):
        body[i] = (None, Null())
    return moved


def _comments_above_next_header(table: Table) -> list[Item]:
    body = _tail_container(table).body
    start = _trailing(_tail_container(table))
    blanks = [i for i in range(start, len(body)) if isinstance(body[i][1], Whitespace)
              and "\n" in body[i][1].s]
    if not blanks:
        return []
    return [v for _, v in body[blanks[-1] + 1:] if isinstance(v, Comment)]


def _next_table(items: list[tuple[Any, Item]]) -> Table | None:
    for _, item in items:
        if isinstance(item, Table):
            return item
        if isinstance(item, AoT) and item.body:
            return item.body[0]
    return None

