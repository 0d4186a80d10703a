"""`demo`: a throwaway config and a forwarding-drop channel seeded with the sample mail that
ships inside the package, synced into a store in the same folder."""

from __future__ import annotations

import tempfile
from importlib import resources
from pathlib import Path

from mailbridge.config.edit import create_config, toml_text
from mailbridge.config.load import load_config
from mailbridge.config.model import Config
from mailbridge.connectors.drop import deliver
from mailbridge.errors import UsageError
from mailbridge.services.channels import add_channel

DEMO_CHANNEL = "demo"


def sample_messages() -> list[tuple[str, bytes]]:
    folder = resources.files("mailbridge.samples")
    return sorted((p.name, p.read_bytes()) for p in folder.iterdir() if p.name.endswith(".eml"))


def create_demo(directory: Path | None) -> Config:
    """The demo in a new temporary folder, or in `directory` if that is new or empty: the
    folder is the demo's alone, so removing it removes the demo and nothing else."""
    root = Path(tempfile.mkdtemp(prefix="mailbridge-demo-")) if directory is None \
        else directory.expanduser().absolute()  # the commands printed work from anywhere
    if root.is_dir() and any(root.iterdir()):
        raise UsageError(f"{root} is not empty; the demo needs a folder of its own",
                         "pass a new or empty folder as --dir, or leave --dir out")
    root.mkdir(parents=True, exist_ok=True)
    config_path = root / "config.toml"
    create_config(config_path, f"[store]\npath = {toml_text(str(root / 'mailbridge.db'))}\n")
    added = add_channel(config_path, {
        "name": DEMO_CHANNEL, "mode": "tickets", "main_email": "support@example.com",
        "default_queue": "general",
        "routes": [{"queue": "billing", "keywords": ["invoice", "refund"]}],
        "incoming": {"type": "drop", "spool": str(root / "spool")},
    })  # which makes the spool
    for name, raw in sample_messages():
        deliver(added.spool, name, raw)
    return load_config(config_path)
