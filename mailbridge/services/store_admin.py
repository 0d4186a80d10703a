"""`store info` and `store migrate`: what a store is, and moving one to another backend."""

from __future__ import annotations

from typing import Any

from mailbridge.config.model import Config, StoreSettings
from mailbridge.config.schema import Invalid, store_url
from mailbridge.errors import PartialFailure, UsageError
from mailbridge.store import copy
from mailbridge.store import info as store_info
from mailbridge.store.backends import connection
from mailbridge.store.session import exists, reading, service_lock, writing


def info(config: Config) -> dict[str, Any]:
    """Backend, version, schema version and row counts (a store not made yet: says so)."""
    if not exists(config.store):
        return {"backend": config.store.kind, "where": store_info.describe(config.store),
                "created": False}
    with reading(config.store) as db:
        return {**store_info.summary(config.store, db), "created": True}


def target_settings(url: str, password: dict[str, Any] | None,
                    lease_seconds: int) -> StoreSettings:
    try:
        url = store_url(url)
    except Invalid as exc:
        raise UsageError(f"--to: {exc}") from None
    if url.lower().startswith("sqlite:"):
        return StoreSettings.sqlite(StoreSettings(url).path or "")
    return StoreSettings(url, password, lease_seconds)


def migrate(config: Config, target: StoreSettings, resume: bool,
            progress: copy.Progress) -> list[copy.TableCount]:
    """Copy the configured store into `target`, which must be empty unless `resume` (a copy
    cut off half-way goes on where it stopped). The source is held under the service and
    write locks meanwhile, so no sync changes it; afterwards every table's count must match."""
    source_where, target_where = (store_info.describe(s) for s in (config.store, target))
    if source_where == target_where:
        raise UsageError(f"--to names the store this config already uses ({source_where})")
    if not exists(config.store):
        raise UsageError(f"{source_where}: no store to migrate yet")
    with service_lock(config.store), writing(config.store) as source, \
            connection(target) as destination:
        missing = copy.unlisted(source)
        if missing:
            raise UsageError(f"{source_where}: tables this mailbridge cannot copy: "
                             + ", ".join(missing))
        if not resume and not copy.is_empty(destination):
            raise UsageError(f"{target_where} already holds mailbridge data",
                             "pass --resume to go on with a copy that was cut off, or "
                             "give an empty database")
        result = copy.copy(source, destination, progress)
    differ = [f"{c.table} {c.source} → {c.target}" for c in result if c.source != c.target]
    if differ:
        raise PartialFailure(f"the copy differs from {source_where}: " + ", ".join(differ),
                             "run it again with --resume")
    return result

