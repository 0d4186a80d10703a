"""`init`: write a commented starting config, or print the example that documents every key."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from mailbridge.config.edit import create_config
from mailbridge.errors import UsageError

# The package's example.toml is a link to the top-level config.example.toml (the one copy,
# which the tests check documents every key); building the package copies its text.
EXAMPLE = resources.files("mailbridge.config").joinpath("example.toml")


def init_config(path: Path, force: bool = False) -> None:
    if path.exists() and not force:
        raise UsageError(f"{path} exists already", "pass --force to overwrite it")
    template = resources.files("mailbridge.config").joinpath("template.toml").read_text("utf-8")
    create_config(path, template.replace("EXAMPLE_PATH", str(EXAMPLE)))


def example_config() -> str:
    return EXAMPLE.read_text("utf-8")
