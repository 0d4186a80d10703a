"""Read the config file once, validate all of it, and hand out typed objects."""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path
from typing import Any

from mailbridge.config import paths
from mailbridge.config.model import (
    AlertSettings,
    Config,
    Hook,
    SalesSettings,
    StoreSettings,
    build_channel,
)
from mailbridge.config.schema import (
    ALERTS,
    CAMPAIGNS,
    CHANNEL,
    HOOK,
    INCOMING,
    M365_APP,
    ME,
    OUTGOING,
    ROUTE,
    SALES,
    STORE,
    TOP_LEVEL,
    Validator,
)
from mailbridge.domain.campaigns import Pace
from mailbridge.domain.checks import did_you_mean
from mailbridge.domain.quotation import SALES_MAILBOXES
from mailbridge.errors import ConfigError

INIT_HINT = "run `mailbridge init` to create one, or pass --config PATH"
# never `init`: it would write a new file in place of the user's channels
SYNTAX_HINT = "fix the file at the line and column named (it was not changed)"


def read_toml(path: Path) -> dict[str, Any]:
    return parse_toml(read_text(path), path)


def read_text(path: Path) -> str:
    try:
        return _read_regular_file(path).decode("utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such config file"], INIT_HINT) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: is not UTF-8 text"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot be read: {exc.strerror}"]) from None


def _read_regular_file(path: Path) -> bytes:
    """The file's bytes; a FIFO, a device or a directory is refused before it is read (a
    FIFO nobody writes to would block every command for ever). Opened without blocking,
    then checked, so that nothing can be swapped in between."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ConfigError([f"{path}: is not a regular file"],
                              "point --config (or $MAILBRIDGE_CONFIG) at the config file")
        return handle.read()


def parse_toml(text: str, path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"], SYNTAX_HINT) from None
    except RecursionError:  # tomllib recurses once per level of [ or {
        raise ConfigError([f"{path}: not valid TOML: arrays or tables nested too deeply"],
                          "a config nests a few levels at most: look for a runaway [ or {"
                          ) from None


def validate(data: dict[str, Any], path: Path) -> Config:
    """Check everything; raise ConfigError listing every problem found."""
    v = Validator()
    for key in data:
        if key not in TOP_LEVEL:
            v.problem(key, "unknown key (expected one of: " + ", ".join(TOP_LEVEL) + ")"
                      + did_you_mean(key, TOP_LEVEL))
    store = v.table("store", data.get("store", {}), STORE)
    if store.get("path") and store.get("url"):
        v.problem("store", "give either path or url, not both")
    raw_alerts = data.get("alerts", {})
    alerts = v.table("alerts", {k: x for k, x in raw_alerts.items() if k != "outgoing"}
                     if isinstance(raw_alerts, dict) else raw_alerts, ALERTS)
    # the alert mail sender of channels without an outgoing connection of their own
    alerts["outgoing"] = (_alert_sender(v, raw_alerts["outgoing"])
                          if isinstance(raw_alerts, dict) and "outgoing" in raw_alerts else None)
    me = v.table("me", data.get("me", {}), ME)
    sales = v.table("sales", data.get("sales", {}), SALES)
    if sales.get("fallback_mailbox") and sales.get("quotation_from") != SALES_MAILBOXES:
        v.problem("sales.fallback_mailbox", 'applies only with quotation_from = '
                  '"sales_mailboxes" (an agent without a sales mailbox of their own)')
    campaigns = v.table("campaigns", data.get("campaigns", {}), CAMPAIGNS)
    apps = []
    for i, app in enumerate(_table_list(v, "m365", data.get("m365", []))):
        apps.append(v.table(f"m365[{_label(app, i)}]", app, M365_APP))
        _check_token_cache(v, f"m365[{_label(app, i)}]", apps[-1])
    channels = []
    seen: set[str] = set()
    for i, raw in enumerate(_table_list(v, "channel", data.get("channel", []))):
        where = f"channel.{_label(raw, i)}"
        ch = v.table(where, {k: x for k, x in raw.items() if k not in ("routes", "incoming",
                                                                     "outgoing")}, CHANNEL)
        ch["incoming"] = v.tagged(f"{where}.incoming", raw.get("incoming", {}), INCOMING)
        ch["outgoing"] = (
            v.tagged(f"{where}.outgoing", raw["outgoing"], OUTGOING) if "outgoing" in raw else None
        )
        ch["routes"] = [
            v.table(f"{where}.routes[{j}]", r, ROUTE)
            for j, r in enumerate(_table_list(v, f"{where}.routes", raw.get("routes", [])))
        ]
        if ch.get("name") in seen:
            v.problem(f"{where}.name", "is used by another channel")
        seen.add(ch.get("name"))
        _check_refs(v, where, ch, {a.get("name") for a in apps})
        channels.append(ch)
    _check_refs(v, "alerts", alerts, {a.get("name") for a in apps})
    hooks = _hooks(v, data.get("hook", []))
    _link_apps(apps, [*channels, alerts])
    if v.problems:
        more = [f"{path}: and {v.more} more problems"] if v.more else []
        raise ConfigError([f"{path}: {p}" for p in v.problems] + more)
    store_settings = _store_settings(store)
    for app in apps:  # where a token_cache_key keeps the app's token cache
        app["token_store"] = store_settings if app.get("token_cache_key") else None
    return Config(
        path=path,
        store=store_settings,
        channels=tuple(build_channel(c) for c in channels),
        m365=tuple(apps),
        alerts=AlertSettings(tuple(alerts["command"] or ()), alerts["after_failures"],
                             alerts["outgoing"], alerts.get("apps") or {}),
        hooks=hooks,
        me_agent=me.get("agent"),
        sales=SalesSettings(sales.get("quotation_from") or SALES_MAILBOXES,
                            sales.get("fallback_mailbox")),
        pace=Pace(campaigns["per_minute"], campaigns["per_day"]),
        data=data,
    )


def _store_settings(store: dict[str, Any]) -> StoreSettings:
    url = store.get("url")
    if url and not url.lower().startswith("sqlite:"):
        return StoreSettings(url, store.get("password"), store["lease_seconds"])
    if url:
        return StoreSettings.sqlite(StoreSettings(url).path or Path())
    return StoreSettings.sqlite(Path(store["path"]) if store.get("path")
                                else paths.default_store_path())


def load_config(path: Path | None = None) -> Config:
    path = path or paths.default_config_path()
    return validate(read_toml(path), path)


def _alert_sender(v: Validator, raw: Any) -> dict[str, Any]:
    out = v.tagged("alerts.outgoing", raw, OUTGOING)
    if out.get("type") in ("smtp", "sendmail") and not out.get("from_email"):
        v.problem("alerts.outgoing.from_email", "is required: the address alert mail comes "
                  "from (Microsoft 365 sends as its mailbox)")
    return out


def _hooks(v: Validator, raw: Any) -> tuple[Hook, ...]:
    """The [[hook]] tables; a hook's name (default: its program's file name) keeps its place
    in the event stream, so two hooks cannot share one."""
    hooks: list[Hook] = []
    for i, table in enumerate(_table_list(v, "hook", raw)):
        where = f"hook.{_label(table, i)}"
        hook = v.table(where, table, HOOK)
        if not hook.get("command") or not hook.get("on"):
            continue
        hook_name = hook["name"] or Path(hook["command"][0]).name
        if any(h.name == hook_name for h in hooks):
            v.problem(f"{where}.name", f"{hook_name!r} is the name of another hook: give "
                      "each [[hook]] a name of its own")
            continue
        hooks.append(Hook(hook_name, hook["on"], tuple(hook["command"]), hook["timeout"]))
    return tuple(hooks)


def _table_list(v: Validator, path: str, value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(x, dict) for x in value):
        v.problem(path, f"must be a list of tables ([[{path}]] sections)")
        return []
    return value


def _label(table: dict[str, Any], index: int) -> str:
    return table["name"] if isinstance(table.get("name"), str) else str(index)


def _check_token_cache(v: Validator, where: str, app: dict[str, Any]) -> None:
    if not app.get("token_cache_key"):
        return
    if app.get("auth") != "delegated":
        v.problem(f"{where}.token_cache_key", 'only a delegated app (auth = "delegated") '
                  "keeps a token cache")
    elif app.get("token_cache"):
        v.problem(f"{where}.token_cache", "give token_cache or token_cache_key, not both "
                  "(with token_cache_key the cache is kept in the store)")


def _check_refs(v: Validator, where: str, ch: dict[str, Any], apps: set[str]) -> None:
    for side in ("incoming", "outgoing"):
        conn = ch.get(side) or {}
        if conn.get("type") == "m365" and conn.get("app") and conn["app"] not in apps:
            v.problem(f"{where}.{side}.app", f'names no [[m365]] entry called "{conn["app"]}"')


def _link_apps(apps: list[dict[str, Any]], channels: list[dict[str, Any]]) -> None:
    """Give each channel the [[m365]] entries it uses, and each app the delegated permissions
    its channels need: write access only where tickets are marked read, so an engagements
    user's sign-in asks for Mail.Read alone. A delegated token reaches another user's mailbox
    only with the `.Shared` variant (Mail.Read.Shared, Mail.ReadWrite.Shared,
    Mail.Send.Shared), which covers the user's own mail too. Unless the app's `shared` says,
    it is asked for when a service account is likely, i.e. the app's channels use more than
    one mailbox in all (read or sent from), or a sales channel (Halo's service account reads
    each agent's mailbox, and sends as it: `opportunities reply`) uses it."""
    by_name = {a.get("name"): a for a in apps}
    needs: dict[str, set[str]] = {name: set() for name in by_name}
    used: dict[str, set[str]] = {name: set() for name in by_name}  # mailboxes per app
    sales: set[str] = set()  # apps a sales channel reads with
    for ch in channels:
        ch["apps"] = {}
        for side in ("incoming", "outgoing"):
            conn = ch.get(side) or {}
            app = by_name.get(conn.get("app")) if conn.get("type") == "m365" else None
            if app is None:
                continue
            ch["apps"][app["name"]] = app
            if side == "outgoing":
                needs[app["name"]].add("Mail.Send")
                used[app["name"]].add(str(conn.get("mailbox", "")).lower())
                continue
            needs[app["name"]].add("Mail.ReadWrite" if ch.get("mode") == "tickets"
                                   else "Mail.Read")
            used[app["name"]].update(m["address"] for m in conn.get("mailboxes") or ())
            if ch.get("mode") == "sales":  # its agents' mail goes out as their mailboxes
                sales.add(app["name"])
                needs[app["name"]].add("Mail.Send")
    for name, app in by_name.items():
        wanted = needs[name] or {"Mail.Read"}
        if "Mail.ReadWrite" in wanted:
            wanted.discard("Mail.Read")
        shared = app.get("shared")
        if shared is None:
            shared = len(used[name]) > 1 or name in sales
        if app.get("auth") == "delegated" and shared:
            wanted = {f"{p}.Shared" for p in wanted}
        app["permissions"] = tuple(sorted(wanted))
