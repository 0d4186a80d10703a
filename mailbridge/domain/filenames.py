"""File names for attachments saved to disk. The name comes from mail, that is from anyone:
it may hold path components (`../../etc/passwd`), control characters, NUL, newlines or bidi
overrides that show `exe.pdf` as `fdp.exe`, be empty, `..`, or longer than a file system
takes. What comes out is one plain name in the directory it is saved to."""

from __future__ import annotations

import re
import unicodedata

NAME_BYTES = 200  # well under NAME_MAX (255 bytes), leaving room for " (12)" and a temp suffix
EXTENSION_CHARS = 16  # a longer "extension" is part of the name, not a file type
FALLBACK = "attachment"
# Not allowed in a Windows file name (the directory may be a share); a slash is cut before.
_RESERVED_CHARS = re.compile(r'[<>:"/\\|?*]')
# Names Windows treats as devices, whatever their extension.
_DEVICES = re.compile(r"^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\.|$)", re.IGNORECASE)


def safe_filename(name: str, fallback: str = FALLBACK) -> str:
    """`name` made a plain file name: its last path component, without control or format
    characters (C0, C1, DEL, NUL, bidi controls), reserved characters as `_`, no leading or
    trailing dots and spaces (no hidden file, no `..`), at most NAME_BYTES of UTF-8 with
    its extension kept; `fallback` when nothing is left."""
    name = unicodedata.normalize("NFC", name or "")
    name = re.split(r"[/\\]", name)[-1]
    name = "".join(c for c in name if unicodedata.category(c) not in ("Cc", "Cf", "Cs", "Zl", "Zp"))
    name = _RESERVED_CHARS.sub("_", name).strip(" .")
    if not name:
        return fallback
    if _DEVICES.match(name):
        name = "_" + name
    return shortened(name, NAME_BYTES)


def split_extension(name: str) -> tuple[str, str]:
    """("report", ".pdf"); no extension when the dot starts the name or the rest is long."""
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or len(ext) > EXTENSION_CHARS or not ext.strip():
        return name, ""
    return stem, "." + ext


def shortened(name: str, limit: int) -> str:
    """`name` cut to `limit` bytes of UTF-8, from the end of its stem (never inside a
    character), keeping its extension."""
    if len(name.encode()) <= limit:
        return name
    stem, ext = split_extension(name)
    room = max(1, limit - len(ext.encode()))
    cut = stem.encode()[:room].decode(errors="ignore").rstrip(" .") or "_"
    return cut + ext


def numbered(name: str, n: int) -> str:
    """The n-th file of the same name, as file managers number them: `report (2).pdf`."""
    stem, ext = split_extension(name)
    return f"{stem} ({n}){ext}"
