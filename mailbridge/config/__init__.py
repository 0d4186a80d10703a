"""TOML config: locate, load and validate, write atomically, resolve secret references."""
