"""Where mailbridge keeps its files when the user does not say."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP = "mailbridge"


def default_config_path() -> Path:
    env = os.environ.get("MAILBRIDGE_CONFIG")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_config_dir(APP)) / "config.toml"


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP))


def default_store_path() -> Path:
    return default_data_dir() / "mailbridge.db"


def default_spool_dir(channel: str) -> Path:
    return default_data_dir() / "spool" / channel
