"""`init`: write a commented starting config."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from mailbridge.config.edit import create_config
from mailbridge.errors import UsageError


def init_config(path: Path, force: bool = False) -> None:
    if path.exists() and not force:
        raise UsageError(f"{path} exists already", "pass --force to overwrite it")
    template = resources.files("mailbridge.config").joinpath("template.toml").read_text("utf-8")
    create_config(path, template)
