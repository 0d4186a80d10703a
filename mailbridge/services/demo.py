"""`demo`: a throwaway config and a forwarding-drop channel seeded with the sample mail that
ships inside the package, synced into a store in the same folder."""

from __future__ import annotations

import tempfile
from importlib import resources
from pathlib import Path

import tomli_w

from mailbridge.config.load import load_config
from mailbridge.config.model import Config
from mailbridge.config.write import write_text_atomic
from mailbridge.connectors.drop import deliver, make_spool
from mailbridge.errors import UsageError

DEMO_CHANNEL = "demo"


def sample_messages() -> list[tuple[str, bytes]]:
    folder = resources.files("mailbridge.samples")
    return sorted((p.name, p.read_bytes()) for p in folder.iterdir() if p.name.endswith(".eml"))


def create_demo(directory: Path | None) -> Config:
    root = Path(tempfile.mkdtemp(prefix="mailbridge-demo-")) if directory is None else directory
    root.mkdir(parents=True, exist_ok=True)
    config_path = root / "config.toml"
    if config_path.exists():
        raise UsageError(f"{root} holds a demo already", "pass another --dir or remove it")
    spool = root / "spool"
    data = {
        "store": {"path": str(root / "mailbridge.db")},
        "channel": [{
            "name": DEMO_CHANNEL, "mode": "tickets", "main_email": "support@example.com",
            "default_queue": "general",
            "routes": [{"queue": "billing", "keywords": ["invoice", "refund"]}],
            "incoming": {"type": "drop", "spool": str(spool)},
        }],
    }
    write_text_atomic(config_path, tomli_w.dumps(data))
    make_spool(spool)
    for name, raw in sample_messages():
        deliver(spool, name, raw)
    return load_config(config_path)
