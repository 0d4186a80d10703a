"""Choosing the store in the config: a path or sqlite:// URL (the default backend), or a
PostgreSQL URL with its password as a secret reference. What a user gets wrong is one line
with the right exit code; `doctor` names the backend, and on a database server the clock."""

from __future__ import annotations

import json
import tomllib

import pytest
import tomli_w
from conftest import Mailbridge, drop, message
from servers.dovecot import free_port


def config_with(mb: Mailbridge, store: dict) -> None:
    """A drop channel with a message waiting, and `store` as the config's [store] table."""
    if not mb.config.exists():
        drop(mb.drop_channel(), message())
    data = tomllib.loads(mb.config.read_text())
    data["store"] = store
    mb.config.write_text(tomli_w.dumps(data))


@pytest.mark.parametrize("slashes", ["//", "///"])  # sqlite:///ABS, and SQLAlchemy's ////
def test_a_sqlite_url_is_the_same_store_as_its_path(tmp_path, slashes):
    mb = Mailbridge(tmp_path)
    config_with(mb, {"url": f"sqlite:{slashes}{tmp_path}/by-url.db"})
    assert mb("sync").exit_code == 0
    assert (tmp_path / "by-url.db").exists()
    info = json.loads(mb("store", "info", "--format", "json").stdout)
    assert info["backend"] == "sqlite" and info["where"] == str(tmp_path / "by-url.db")


@pytest.mark.parametrize(("store", "expected"), [
    ({"url": "postgresql://u:hunter2@db.example/mb"}, "must not contain a password"),
    ({"url": "mysql://db.example/mb"}, 'must start with "sqlite:" or "postgresql://"'),
    ({"url": "postgresql://db.example/mb", "path": "/tmp/x.db"},
     "give either path or url, not both"),
    ({"url": "postgresql://db.example/mb", "lease_seconds": 5}, "lease_seconds"),
])
def test_a_wrong_store_setting_is_one_config_line(tmp_path, store, expected):
    mb = Mailbridge(tmp_path)
    config_with(mb, store)
    result = mb("status")
    assert result.exit_code == 2
    assert expected in result.stderr and "Traceback" not in result.stderr
    assert "hunter2" not in result.stderr


def test_a_wrong_database_password_is_exit_3_and_an_absent_server_exit_75(tmp_path, postgres,
                                                                         monkeypatch):
    mb = Mailbridge(tmp_path)
    monkeypatch.setenv("MB_WRONG_PG", "not-the-password")
    config_with(mb, {"url": postgres.url("mailbridge_tests"),
                     "password": {"env": "MB_WRONG_PG"}})
    refused = mb("sync")
    assert refused.exit_code == 3, refused.stderr
    assert "the database refused the login" in refused.stderr
    assert "not-the-password" not in refused.stderr and len(refused.stderr.splitlines()) == 2
    from mailbridge.store.backends import close_all

    close_all()
    config_with(mb, {"url": f"postgresql://mbtest@127.0.0.1:{free_port()}/mb"})
    absent = mb("sync")
    assert absent.exit_code == 75, absent.stderr
    assert "the database cannot be used now" in absent.stderr
    assert "Traceback" not in absent.stderr
    close_all()


def test_doctor_names_the_backend_and_on_a_server_checks_the_clock(mb):
    mb.drop_channel()
    assert mb("sync").exit_code == 0
    checks = {c["check"]: c for c in json.loads(
        mb("doctor", "--offline", "--format", "json").stdout)}
    assert checks["store"]["status"] == "ok"
    if mb.backend == "postgresql":
        assert "PostgreSQL" in checks["store"]["detail"]
        assert checks["clock"]["status"] == "ok"
        assert "the database's" in checks["clock"]["detail"]
    else:
        assert "SQLite" in checks["store"]["detail"] and "clock" not in checks


@pytest.mark.parametrize(("skew", "said"), [
    (0.04, "within 0.1 s of"), (-0.04, "within 0.1 s of"), (2.5, "2.5 s behind"),
    (-2.5, "2.5 s ahead of")])
def test_doctor_says_how_far_the_clock_is_from_the_databases(monkeypatch, skew, said):
    """A skew that rounds to 0.0 s has no direction worth naming (it changed from one run to
    the next, and `doctor --format csv` with it)."""
    from mailbridge.services import doctor

    monkeypatch.setattr(doctor.store_info, "clock_skew", lambda db: skew)
    (check,) = doctor._clock_check(None)
    assert check["detail"] == f"this host's clock is {said} the database's"
