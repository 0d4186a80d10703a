"""Several hosts, one PostgreSQL store: three `mailbridge run` processes, each in a UTS
namespace of its own so that it is a host of its own name, share 40 IMAP channels of a real
Dovecot while mail keeps arriving. One is SIGKILLed mid-sync, one is SIGSTOPped past its
leases and then woken. Afterwards every message is stored once, filed in one ticket and
\\Seen on the server; the lease handovers are printed, and fences only ever went up."""

from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict

import pytest
from conftest import PG_PASSWORD_ENV, Mailbridge, drop, message

from mailbridge.config.model import StoreSettings
from mailbridge.store import leases
from mailbridge.store.backends import close_all, connection

CHANNELS, PER_CHANNEL, LEASE_SECONDS = 40, 50, 10
WAIT = 240.0


def can_unshare() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "--uts", "true"], capture_output=True,
                          timeout=10).returncode == 0


def wait_for(what: str, check, timeout: float = WAIT, explain=lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}\n{explain()}")


class Fleet:
    def __init__(self, mb: Mailbridge) -> None:
        self.mb = mb
        self.procs: dict[str, subprocess.Popen] = {}
        self.target = StoreSettings(mb.store_url, {"env": PG_PASSWORD_ENV})

    def start(self, host: str) -> None:
        command = (f"hostname {host} && exec {sys.executable} -m mailbridge "
                   f"--config {self.mb.config} run")
        log = open(self.mb.root / f"{host}.log", "ab")  # noqa: SIM115 - closed by the process
        self.procs[host] = subprocess.Popen(["unshare", "--uts", "sh", "-c", command],
                                            stdout=subprocess.DEVNULL, stderr=log)

    def events(self) -> list[dict]:
        with connection(self.target, readonly=True) as db:
            return leases.events(db)

    def holds(self, host: str) -> bool:
        """Whether a process named `host` holds a lease at this moment."""
        with connection(self.target, readonly=True) as db:
            return any((r["owner"] or "").startswith(f"{host}:") for r in leases.holders(db))

    def while_holding(self, host: str, sig: signal.Signals) -> None:
        """Send `sig` to `host` while it holds a lease (a kill mid-sync, a pause that leaves
        a lease to run out); a host that happened to be between two channels is given the
        signal again later (after SIGCONT, or restarted after SIGKILL)."""
        for _attempt in range(10):
            wait_for(f"{host} to hold a lease", lambda: self.holds(host))
            self.procs[host].send_signal(sig)
            time.sleep(0.5)  # a statement the host sent just before (a COMMIT) is done now
            if self.holds(host):
                return
            if sig == signal.SIGKILL:
                self.procs[host].wait(timeout=10)
                self.start(host)
            else:
                self.procs[host].send_signal(signal.SIGCONT)
        raise AssertionError(f"{host} never held a lease when signalled")

    def explain(self) -> str:
        """What the hosts' sessions are doing and who holds what, for a wait that ran out."""
        with connection(self.target, readonly=True) as db:
            sessions = db.execute(
                "SELECT pid, state, wait_event_type, wait_event, left(query, 120) "
                "FROM pg_stat_activity WHERE application_name = 'mailbridge'").fetchall()
            held = [row for row in leases.holders(db) if row["owner"]]
        tails = {host: self.log(host)[-1500:] for host in self.procs}
        return "\n".join([*map(str, sessions), *map(str, held),
                          *(f"--- {host}:\n{tail}" for host, tail in tails.items())])

    def log(self, host: str) -> str:
        return (self.mb.root / f"{host}.log").read_text(errors="replace")

    def stop_all(self) -> dict[str, int]:
        codes = {}
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.send_signal(signal.SIGTERM)
        for host, proc in self.procs.items():
            try:
                codes[host] = proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                codes[host] = proc.wait(timeout=10)
        return codes


@pytest.mark.skipif(not can_unshare(), reason="needs `unshare --uts` (root) to give each run "
                                              "process a host name of its own")
def test_three_hosts_share_forty_channels_through_a_kill_and_a_pause(tmp_path, pg_url,
                                                                      dovecot):
    mb = Mailbridge(tmp_path, pg_url)
    users = [dovecot.add_user() for _ in range(CHANNELS)]
    channels = []
    for i, user in enumerate(users):
        secret = tmp_path / f"pw{i}"
        secret.write_text(user.password + "\n")
        channels.append({"name": f"box{i:02d}", "schedule": "2s",
                         "main_email": f"support{i}@example.com",
                         "incoming": {"type": "imap", "host": "127.0.0.1", "port": user.port,
                                      "security": "none", "username": user.username,
                                      "password": {"file": str(secret)}}})
        dovecot.append(user.username, user.password,
                       [message(f"Box {i} #{j}", message_id=f"b{i}-{j}@fleet")
                        for j in range(PER_CHANNEL)])
    mb.write_config(channels)
    store = mb.config.read_text().replace("[store]\n", f"[store]\nlease_seconds = "
                                                      f"{LEASE_SECONDS}\n", 1)
    mb.config.write_text(store)
    fleet = Fleet(mb)
    with connection(fleet.target):
        pass  # made and migrated, so the test can watch its leases from the first moment
    arrived: list[int] = []
    arriving = threading.Event()

    def keep_mail_coming() -> None:
        rng = random.Random(7)
        n = 0
        while not arriving.wait(0.4):
            i = rng.randrange(CHANNELS)
            dovecot.append(users[i].username, users[i].password,
                           [message(f"Box {i} late {n}", message_id=f"late{n}@fleet")])
            arrived.append(i)
            n += 1

    mail = threading.Thread(target=keep_mail_coming, daemon=True)
    try:
        for host in ("host-a", "host-b", "host-c"):
            fleet.start(host)
        mail.start()
        fleet.while_holding("host-a", signal.SIGKILL)  # dies mid-sync, its lease held
        fleet.while_holding("host-b", signal.SIGSTOP)  # paused, its lease held
        # its leases run out (and the server ends a transaction it left open): host-c takes
        # them over, however long its own job of the moment takes on a loaded machine
        wait_for("the paused host's leases to be taken over", lambda: not fleet.holds("host-b"),
                 explain=fleet.explain)
        fleet.procs["host-b"].send_signal(signal.SIGCONT)
        time.sleep(LEASE_SECONDS)
        arriving.set()
        mail.join(timeout=30)
        total = CHANNELS * PER_CHANNEL + len(arrived)
        wait_for(f"all {total} messages to be stored",
                 lambda: mb.value("SELECT count(*) FROM messages") >= total)
        wait_for("every message to be marked read on the server",
                 lambda: all(not unseen(dovecot, u) for u in users))
        codes = fleet.stop_all()
    finally:
        arriving.set()
        for proc in fleet.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.kill()
                proc.wait(timeout=10)
        close_all()

    events = fleet.events()
    holder: dict[tuple[str, str], str | None] = {}
    fences: dict[tuple[str, str], list[int]] = defaultdict(list)
    handovers, takeovers = 0, []
    for e in events:
        unit = (e["channel"], e["mailbox"])
        host = (e["owner"] or "").split(":")[0]
        if e["event"] != "claimed":
            holder[unit] = None
            continue
        fences[unit].append(e["fence"])
        before = holder.get(unit)
        if before is not None and before != host:  # never released: it died or was paused
            takeovers.append(f"{unit[0]}: {before} -> {host} (fence {e['fence']})")
        elif unit in holder:
            handovers += 1
        holder[unit] = host
    print(f"\n{len(events)} lease events, {handovers} ordinary handovers; takeovers of "
          f"leases their holder never gave back ({len(takeovers)}):")
    print("\n".join(f"  {t}" for t in takeovers))
    assert codes["host-b"] == 0 and codes["host-c"] == 0, codes
    assert all(f == sorted(set(f)) for f in fences.values()), "a fence went backwards"
    assert any(t.split(": ")[1].startswith("host-a ->") for t in takeovers), \
        "nothing the killed host held was taken over"
    assert any(t.split(": ")[1].startswith("host-b ->") for t in takeovers), \
        "nothing the paused host held was taken over"
    assert mb.query("SELECT count(*), count(DISTINCT message_id) FROM messages")[0] == \
        (total, total)
    assert mb.query("SELECT count(*), count(DISTINCT message) FROM ticket_messages")[0] == \
        (total, total)
    assert mb.value("SELECT count(*) FROM tickets") == total
    assert mb.value("SELECT count(*) FROM ledger") == total
    logs = fleet.log("host-b") + fleet.log("host-c")
    assert "Traceback" not in logs
    assert "maximum number of running instances" not in logs  # a claim tick while one works


def unseen(dovecot, user) -> list[int]:
    client = dovecot.client(user.username, user.password)
    try:
        client.select_folder("INBOX", readonly=True)
        return client.search(["UNSEEN"])
    finally:
        client.logout()


def test_status_and_leases_show_holders_and_hosts_and_a_lease_is_released_by_hand(
        tmp_path, pg_url):
    mb = Mailbridge(tmp_path, pg_url)
    mb.drop_channel()
    assert mb("sync").exit_code == 0
    target = StoreSettings(pg_url, {"env": PG_PASSWORD_ENV})
    with connection(target) as db:
        leases.heartbeat(db, "elsewhere:42", "elsewhere", 42)
        held = leases.claim(db, ("support", ""), "elsewhere:42", 3600, due_only=False)
    assert held is not None
    rows = json.loads(mb("status", "--format", "json").stdout)
    assert rows[0]["held_by"].startswith("elsewhere:42 (")
    listed = json.loads(mb("leases", "list", "--format", "json").stdout)
    assert [(r["channel"], r["owner"], r["fence"]) for r in listed] == [
        ("support", "elsewhere:42", held.fence)]
    hosts = json.loads(mb("leases", "hosts", "--format", "json").stdout)
    assert [(h["owner"], h["alive"]) for h in hosts] == [("elsewhere:42", True)]
    busy = mb("sync")  # the one channel is held by another host
    assert busy.exit_code == 75
    assert "being synced by another host" in busy.stderr
    freed = mb("leases", "release", "support")
    assert freed.exit_code == 0 and "held by elsewhere:42" in freed.stderr
    with connection(target) as db:
        assert not leases.renew(db, held, 3600)  # fenced out
    assert mb("sync").exit_code == 0
    none_here = mb("leases", "release", "nosuch")
    assert none_here.exit_code == 2 and "no channel called nosuch" in none_here.stderr


def test_a_row_a_dead_host_left_sending_is_unknown_and_never_sent_again(tmp_path, pg_url,
                                                                         smtp):
    """On a shared store a `sending` row is in flight while its sender's heartbeat is fresh;
    a host that died mid-send leaves it `unknown`: listed so, and never sent by itself."""
    mb = Mailbridge(tmp_path, pg_url)
    spool = mb.drop_channel(outgoing={"type": "smtp", "host": "127.0.0.1", "port": smtp.port,
                                      "security": "none"})
    drop(spool, message("Help", message_id="h1@x"), "1")
    assert mb("sync").exit_code == 0
    assert mb("tickets", "reply", "1", "-m", "On it.").exit_code == 0
    target = StoreSettings(pg_url, {"env": PG_PASSWORD_ENV})
    with connection(target) as db:
        leases.heartbeat(db, "alive-host:1", "alive-host", 1)
        db.execute("UPDATE outbox SET state='sending', claimed_by='alive-host:1'")
    def states() -> list[str]:
        return [r["state"] for r in json.loads(mb("outbox", "list", "--format", "json").stdout)]

    assert states() == ["sending"]  # its sender's heartbeat is fresh: in flight
    assert mb("sync").exit_code == 0 and smtp.received == []  # not ours to send or judge
    with connection(target) as db:
        db.execute("UPDATE hosts SET heartbeat_at = heartbeat_at - 3600")  # it fell silent
    assert states() == ["unknown"]
    assert mb("sync").exit_code == 4  # the drain marks it unknown, and says so
    assert smtp.received == []
    assert states() == ["unknown"]


def test_a_channel_pinned_to_another_host_is_left_to_it(mb):
    """A drop channel's spool is a folder on one host: `host` names it, and no other host
    syncs the channel (a named one is refused in one line); `ingest` works anywhere."""
    import socket

    here = mb.drop_channel("here")
    there = mb.drop_channel("there", host="mx-elsewhere")
    drop(here, message("Here", message_id="h@x"))
    drop(there, message("There", message_id="t@x"))
    assert mb("sync").exit_code == 0
    assert mb.query("SELECT channel FROM messages") == [("here",)]
    refused = mb("sync", "there")
    assert refused.exit_code == 2
    assert "synced on host mx-elsewhere, not here" in refused.stderr
    piped = mb("ingest", "there", input=message("Piped", message_id="p@x"))
    assert piped.exit_code == 0
    mb.drop_channel("mine", host=socket.gethostname().upper())  # names compare any case
    drop(mb.root / "spool" / "mine", message("Mine", message_id="m@x"))
    assert mb("sync", "mine").exit_code == 0
    bad = mb.drop_channel("bad", host="not a host")
    assert mb("sync").exit_code == 2 and bad.exists()
