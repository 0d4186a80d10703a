"""What the top-level options set for every command: config path and verbosity."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import typer

from mailbridge.config.load import load_config
from mailbridge.config.model import Config
from mailbridge.config.paths import default_config_path
from mailbridge.redact import RedactingFilter


@dataclass
class State:
    config_path: Path | None = None
    verbosity: int = 0
    _config: Config | None = field(default=None, repr=False)

    @property
    def path(self) -> Path:
        return self.config_path or default_config_path()

    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.path)
        return self._config


def state(ctx: typer.Context) -> State:
    root = ctx.find_root()
    if not isinstance(root.obj, State):
        root.obj = State()
    return root.obj


def setup_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    handler = logging.StreamHandler()
    # journald adds its own timestamps
    fmt = "%(levelname)s %(name)s: %(message)s" if os.environ.get("JOURNAL_STREAM") \
        else "%(asctime)s %(levelname)s %(name)s: %(message)s"
    handler.setFormatter(logging.Formatter(fmt))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
