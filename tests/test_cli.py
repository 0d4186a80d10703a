"""The command line contract: help everywhere, data on stdout, words on stderr, stable JSON,
documented exit codes, and no traceback for anything a user can cause."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from conftest import drop, message
from typer.main import get_command
from typer.testing import CliRunner

from mailbridge.cli.app import COMMANDS, app, module_commands
from mailbridge.cli.examples import EXAMPLES

ROOT = get_command(app)


def all_commands(group=ROOT, prefix=()):
    for name, cmd in group.commands.items():
        yield prefix + (name,)
        if hasattr(cmd, "commands"):
            yield from all_commands(cmd, prefix + (name,))


@pytest.mark.parametrize("path", list(all_commands()), ids=" ".join)
def test_every_command_has_help(mb, path):
    result = mb(*path, "--help")
    assert result.exit_code == 0
    assert "Usage:" in result.stdout
    assert (_command(path).help or "").strip(), f"{' '.join(path)} has no help text"


@pytest.mark.parametrize("path", [(), *all_commands()], ids=lambda p: " ".join(p) or "root")
def test_every_help_has_examples_that_parse_arguments_by_name_and_every_bracket(path):
    """Like gh: examples at the end of every command's help, each one a command line its
    command accepts; arguments by name (`TICKET`, not Typer's `{ticket}`); `[[m365]]` and
    `[store] url` shown as written, not taken for Rich markup and dropped."""
    shown = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert not re.search(r"\{[A-Za-z_]+\}", shown.stdout), shown.stdout
    command = _command(path)
    texts = [command.help or "", *(getattr(p, "help", None) or "" for p in command.params)]
    for text in texts:
        for bracketed in re.findall(r"\[[^\]\s]*\]+", text.replace("\\[", "[")):
            assert bracketed in shown.stdout, f"{bracketed} was eaten"
    for param in command.params:
        if param.param_type_name == "argument":
            assert param.metavar and param.metavar.isupper(), param.name
    found = EXAMPLES.get(" ".join(path), ())
    assert found, f"{' '.join(path) or 'mailbridge'} has no examples"
    parsed = 0
    for line in found:
        assert f"$ {line.split('#')[0].strip()}" in shown.stdout
        for words in _mailbridge_commands(line):
            assert _parsed_path(words)[:len(path)] == path, line
            parsed += 1
    assert parsed, "no example runs mailbridge"


def _mailbridge_commands(line: str):
    """The `mailbridge …` commands of an example line (a pipeline's parts, redirections and
    comments left out)."""
    words = shlex.split(line, comments=True)
    part: list[str] = []
    for word in [*words, "|"]:
        if word == "|":
            if part[:1] == ["mailbridge"]:
                yield part[1:]
            part = []
        elif word in (">", "<"):
            part.append(None)
        elif part and part[-1] is None:
            part[-1:] = []
        else:
            part.append(word)


def _parsed_path(words: list[str]) -> tuple[str, ...]:
    """Parse `words` as the CLI would (options, values, arguments), without running
    anything; returns the command path they reach."""
    ctx = ROOT.make_context("mailbridge", list(words))
    command, path = ROOT, ()
    while hasattr(command, "commands"):
        name, *rest = ctx._protected_args + ctx.args
        command = command.commands[name]
        path += (name,)
        ctx = command.make_context(name, rest, parent=ctx)
    return path


def test_expected_commands_exist():
    names = {" ".join(p) for p in all_commands()}
    assert {"init", "add-channel", "demo", "sync", "ingest", "reprocess", "doctor",
            "channels list", "channels show", "channels enable", "channels disable",
            "channels remove", "tickets list", "tickets show", "secrets set",
            "secrets check"} <= names


def test_every_command_is_in_the_readme_table():
    """README's command table is the reference: a command missing from it is undocumented."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    rows = [line for line in readme.splitlines() if line.startswith("| `")]
    leaves = [p for p in all_commands() if not hasattr(_command(p), "commands")]
    missing = []
    for path in leaves:
        own_rows = [r for r in rows if r.startswith(f"| `{path[0]}")]
        words = " ".join(path[1:])
        if not any(re.search(rf"\b{re.escape(words)}\b", r.split(" | ")[0]) or not words
                   for r in own_rows):
            missing.append(" ".join(path))
    assert missing == []


def _command(path):
    cmd = ROOT
    for part in path:
        cmd = cmd.commands[part]
    return cmd


def test_the_command_table_names_exactly_what_each_module_registers():
    for module in set(COMMANDS.values()):
        assert set(module_commands(module)) == {n for n, m in COMMANDS.items() if m == module}


def test_a_command_loads_only_its_own_module():
    """The root builds only the command being run (a cron poll's start-up time); help and
    "did you mean" still see every command."""
    probe = ("import sys\n"
             "from mailbridge.cli.app import main\n"
             "sys.argv = ['mailbridge', *sys.argv[1:]]\n"
             "try:\n    main()\nexcept SystemExit:\n    pass\n"
             "print(sorted(m for m in sys.modules if m.startswith('mailbridge.cli.cmd_')))\n")

    def loaded(*argv):
        out = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True,
                             text=True, timeout=60)
        return out.stdout.splitlines()[-1], out.stderr

    assert loaded("sync", "--help")[0] == "['mailbridge.cli.cmd_sync']"
    assert loaded("tickets", "--help")[0] == ("['mailbridge.cli.cmd_attachments', "
                                              "'mailbridge.cli.cmd_outgoing', "
                                              "'mailbridge.cli.cmd_ticket_work', "
                                              "'mailbridge.cli.cmd_tickets']")
    modules, err = loaded("tickts")
    assert modules == "[]" and "Did you mean 'tickets'" in err


def test_shell_completion_is_offered_and_completes_every_command():
    """--install-completion / --show-completion (Typer's); the commands built only when run
    are completed too."""
    script = Path(sys.executable).with_name("mailbridge")
    # Typer finds the shell among the command's parents: run it from one (`; true` keeps
    # bash from exec'ing it), so that a test runner without a shell above it passes too
    shown = subprocess.run(["bash", "-c", f"'{script}' --show-completion bash; true"],
                           capture_output=True, text=True, timeout=60)
    assert "_MAILBRIDGE_COMPLETE=complete_bash" in shown.stdout

    def complete(line: str) -> list[str]:
        env = {**os.environ, "_MAILBRIDGE_COMPLETE": "complete_bash", "COMP_WORDS": line,
               "COMP_CWORD": str(len(line.split()) - 1)}
        done = subprocess.run([str(script)], capture_output=True, text=True, env=env,
                              timeout=60)
        return done.stdout.split()

    assert complete("mailbridge tic") == ["tickets"]
    assert complete("mailbridge tickets re") == ["reopen", "reply"]
    assert "--attach" in complete("mailbridge tickets reply 1 --at")


def test_unknown_option_is_usage_exit_2(mb):
    assert mb("sync", "--frobnicate").exit_code == 2


def usage_error(result, *wanted: str) -> None:
    """Exit 2 and one `mailbridge: error:` line (and a hint), not Typer's boxed panel."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert lines[0].startswith("mailbridge: error: ") and len(lines) <= 2, result.stderr
    assert all(line.startswith("mailbridge: hint: ") for line in lines[1:]), result.stderr
    for text in wanted:
        assert text in lines[0]


@pytest.mark.parametrize("path", list(all_commands()), ids=" ".join)
def test_a_bad_flag_is_one_error_line_everywhere(mb, path):
    usage_error(mb(*path, "--no-such-flag"), "no such option: --no-such-flag")


def test_bad_values_and_arguments_are_one_error_line(mb):
    mb.drop_channel()
    usage_error(mb("tickets", "show", "abc"), "id abc: must be an integer")
    usage_error(mb("tickets", "show"), "missing argument")
    usage_error(mb("status", "--format", "xml"), "--format xml: must be one of")
    usage_error(mb("tickts"), "Did you mean 'tickets'")
    usage_error(mb("-v", "2", "status"), "no such command '2'")  # -v counts, takes no value
    runner = CliRunner()
    usage_error(runner.invoke(app, ["--bogus", "status"]), "no such option: --bogus")
    usage_error(runner.invoke(app, ["status", "--config"]), "'--config' requires an argument")
    unreadable = runner.invoke(app, ["--config", str(mb.root), "status"])
    assert unreadable.exit_code == 2
    assert unreadable.stderr.startswith(f"mailbridge: error: {mb.root}: cannot be read")


def test_global_options_work_before_or_after_the_command(mb):
    spool = mb.drop_channel()
    drop(spool, message("Anywhere", message_id="g@x"), "g1")
    runner = CliRunner()
    after = runner.invoke(app, ["sync", "--config", str(mb.config), "-v"])
    assert after.exit_code == 0, after.output
    assert "support: g1: new ticket #1 'Anywhere'" in after.stderr  # -v after the command
    listed = runner.invoke(app, ["tickets", "list", "-c", str(mb.config), "-f", "json"])
    assert json.loads(listed.stdout)[0]["subject"] == "Anywhere"
    both = runner.invoke(app, ["-v", "--config", str(mb.config), "channels", "list", "-v"])
    assert both.exit_code == 0, both.output
    help_text = mb("--help").stdout
    verbose_line = next(line for line in help_text.splitlines() if "--verbose" in line)
    assert "<int>" not in verbose_line and "INTEGER" not in verbose_line
    assert "[default: 0]" not in help_text
    assert "--config" in mb("tickets", "list", "--help").stdout


def test_declining_a_confirmation_is_exit_2_and_changes_nothing(mb):
    mb.drop_channel("a")
    before = mb.config.read_text()
    declined = mb("channels", "remove", "a", input="n\n")
    # (a terminal ends the prompt's line with the typed answer; the test runner does not)
    assert declined.exit_code == 2, declined.output
    assert declined.stderr.endswith("mailbridge: cancelled; nothing was changed\n")
    at_end = mb("channels", "remove", "a", input="")  # end of input at the prompt
    assert at_end.exit_code == 2, at_end.output
    assert at_end.stderr.splitlines()[-1] == "mailbridge: cancelled; nothing was changed"
    assert mb.config.read_text() == before
    assert mb("channels", "remove", "a", input="y\n").exit_code == 0


def test_a_commands_warnings_are_mailbridge_lines_and_libraries_stay_quiet(capsys):
    """A dropped IMAP connection logged a bare `2026-… WARNING mailbridge.connectors…`
    line; APScheduler's INFO lines came through around every job of `run`."""
    import logging

    from mailbridge.cli.state import setup_logging

    setup_logging(0)
    logging.getLogger("mailbridge.connectors.imap_session").warning("imap: dropped, retrying")
    logging.getLogger("apscheduler.scheduler").info("Adding job tentatively")
    assert capsys.readouterr().err == "mailbridge: warning: imap: dropped, retrying\n"
    setup_logging(1, service=True)
    logging.getLogger("mailbridge.run").info("desk: ok: 1 new")
    logging.getLogger("apscheduler.executors.default").info("Running job")
    err = capsys.readouterr().err
    assert "INFO mailbridge.run: desk: ok: 1 new" in err and "Running job" not in err
    setup_logging(2)
    logging.getLogger("apscheduler.executors.default").debug("Running job")
    assert "Running job" in capsys.readouterr().err  # -vv: libraries' debug logs too
    setup_logging(0)


def test_tickets_list_formats(mb):
    spool = mb.drop_channel()
    # a tab in a header is folding white space: the parser makes it a space
    drop(spool, message("Tab\there, comma, \"quote\"", message_id="f@x"))
    assert mb("sync").exit_code == 0
    as_json = json.loads(mb("tickets", "list", "--format", "json").stdout)
    assert list(as_json[0]) == ["id", "channel", "queue", "status", "priority", "assignee",
                                "kind", "requester_email", "subject", "message_count",
                                "created_at", "updated_at"]
    assert (as_json[0]["priority"], as_json[0]["assignee"]) == ("normal", None)
    lines = mb("tickets", "list", "--format", "jsonl").stdout.splitlines()
    assert [json.loads(x)["id"] for x in lines] == [1]
    rows = list(csv.reader(io.StringIO(mb("tickets", "list", "--format", "csv").stdout)))
    assert rows[1][8] == "Tab here, comma, \"quote\""
    tsv = mb("tickets", "list").stdout.splitlines()  # not a TTY: tsv by default
    assert tsv[0].split("\t")[0] == "id"
    assert tsv[1].split("\t")[8] == "Tab here, comma, \"quote\""


def test_tickets_show_text_json_and_raw(mb):
    spool = mb.drop_channel()
    raw = message("Show me", message_id="s@x", body="Body line")
    drop(spool, raw)
    assert mb("sync").exit_code == 0
    text = mb("tickets", "show", "1")
    assert text.exit_code == 0 and "Body line" in text.stdout and "#1 [open] Show me" in text.stdout
    data = json.loads(mb("tickets", "show", "1", "--format", "json").stdout)
    assert data["messages"][0]["from_email"] == "ann@customer.example"
    assert data["messages"][0]["classification"] == "human"
    assert mb("tickets", "show", "1", "--raw").stdout_bytes == raw
    missing = mb("tickets", "show", "99")
    assert missing.exit_code == 2 and "no ticket #99" in missing.stderr


def test_quiet_sync_prints_nothing(mb):
    spool = mb.drop_channel()
    drop(spool, message())
    result = mb("sync", "--quiet")
    assert result.exit_code == 0 and result.stdout == "" and result.stderr == ""


def test_sync_json_results_and_verbose_lines(mb):
    spool = mb.drop_channel()
    drop(spool, message("One", message_id="o@x"), "k1")
    result = mb("-v", "sync", "--format", "json")
    assert json.loads(result.stdout)[0] | {} == {
        "channel": "support", "status": "ok", "fetched": 1, "stored": 1, "duplicates": 0,
        "failed": 0, "unparsed": 0, "error": None}
    assert "support: k1: new ticket #1 'One'" in result.stderr


def test_partial_failure_across_channels_is_exit_4(mb):
    good = mb.drop_channel("good")
    bad = mb.drop_channel("bad")
    drop(good, message())
    for sub in ("new", "cur", "tmp"):
        (bad / sub).rmdir()
    result = mb("sync")
    assert result.exit_code == 4
    assert "bad: failed" in result.stderr


def test_unreachable_microsoft_sign_in_is_a_clear_line(mb, monkeypatch):
    monkeypatch.setenv("X", "secret-value")
    mb.write_config([{"name": "o365", "incoming": {"type": "m365", "app": "contoso",
                                                   "mailboxes": ["help@contoso.example"]}}],
                    m365=[{"name": "contoso", "tenant_id": "t", "client_id": "c",
                           "client_secret": {"env": "X"}, "timeout": 5,
                           "authority_url": "https://127.0.0.1:9"}])
    result = mb("sync")
    assert result.exit_code == 75
    assert "m365 app contoso: https://127.0.0.1:9 did not answer" in result.stderr
    assert "Traceback" not in result.stderr


def test_internal_errors_are_one_line_unless_vv(mb, monkeypatch):
    mb.drop_channel()
    import mailbridge.services.sync as sync_mod

    def boom(*a, **k):
        raise RuntimeError("kaput")

    monkeypatch.setattr(sync_mod, "sync", boom)
    result = mb("sync")
    assert result.exit_code == 1
    assert "internal error: RuntimeError: kaput" in result.stderr
    assert "Traceback" not in result.stderr
    assert "Traceback" in mb("-vv", "sync").stderr


def test_doctor_reports_each_part(mb):
    spool = mb.drop_channel()
    drop(spool, message())
    before = json.loads(mb("doctor", "--format", "json").stdout)
    assert [c["status"] for c in before if c["check"] == "store"] == ["warn"]
    assert mb("sync").exit_code == 0
    result = mb("doctor", "--format", "json")
    assert result.exit_code == 0
    checks = {c["check"]: c for c in json.loads(result.stdout)}
    assert checks["config"]["status"] == "ok"
    assert checks["store"]["status"] == "ok"
    assert checks["store integrity"]["detail"] == "ok"
    assert checks["channel support"]["detail"].startswith("last success")
    assert checks["connection support"]["detail"].endswith(": 0 waiting")
    offline = json.loads(mb("doctor", "--offline", "--format", "json").stdout)
    assert not [c for c in offline if c["check"].startswith("connection")]
    mb.config.write_text("nonsense = [")
    assert mb("doctor").exit_code == 2


def test_doctor_fails_an_unreachable_server(mb, monkeypatch):
    from servers.dovecot import free_port

    monkeypatch.setenv("MB_DOCTOR_PW", "x")
    mb.write_config([{"name": "desk", "incoming": {
        "type": "imap", "host": "127.0.0.1", "port": free_port(), "security": "none",
        "username": "u", "password": {"env": "MB_DOCTOR_PW"}, "timeout": 5}}])
    result = mb("doctor", "--format", "json")
    assert result.exit_code == 4
    failed = {c["check"]: c["detail"] for c in json.loads(result.stdout)
              if c["status"] == "fail"}
    assert list(failed) == ["connection desk"]
    assert "127.0.0.1" in failed["connection desk"]
    assert mb("doctor", "--offline").exit_code == 0


def test_doctor_checks_the_alerts_outgoing_connection(mb, smtp):
    """`[alerts] outgoing` sends alert mail for channels without their own: doctor logs in
    to it as it does to each channel, so a broken one is found before an alert needs it."""
    from servers.dovecot import free_port

    mb.drop_channel()
    channels = tomllib.loads(mb.config.read_text())["channel"]
    mb.write_config(channels, alerts={"outgoing": {
        "type": "smtp", "host": "127.0.0.1", "port": smtp.port, "security": "none",
        "from_email": "ops@example.com"}})
    checks = {c["check"]: c for c in json.loads(mb("doctor", "--format", "json").stdout)}
    assert checks["alerts outgoing"]["status"] == "ok"
    assert f"127.0.0.1:{smtp.port}" in checks["alerts outgoing"]["detail"]
    mb.write_config(channels, alerts={"outgoing": {
        "type": "smtp", "host": "127.0.0.1", "port": free_port(), "security": "none",
        "from_email": "ops@example.com", "timeout": 5}})
    result = mb("doctor", "--format", "json")
    assert result.exit_code == 4
    failed = [c["check"] for c in json.loads(result.stdout) if c["status"] == "fail"]
    assert failed == ["alerts outgoing"]
    offline = json.loads(mb("doctor", "--offline", "--format", "json").stdout)
    assert "alerts outgoing" not in {c["check"] for c in offline}


def test_demo_runs_on_the_embedded_samples(tmp_path):
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, ["demo", "--dir", str(tmp_path / "demo")])
    assert result.exit_code == 0, result.stderr
    assert "Cannot log in since this morning" in result.stdout
    listed = CliRunner().invoke(app, ["--config", str(tmp_path / "demo" / "config.toml"),
                                      "tickets", "list", "--status", "all", "--format", "json"])
    rows = json.loads(listed.stdout)
    by_subject = {r["subject"]: r for r in rows}
    login = by_subject["Cannot log in since this morning"]
    assert login["message_count"] == 4  # reply, reply-all from CC, token-only reply
    assert by_subject["Счёт за ноябрь (invoice)"]["queue"] == "billing"
    kinds = {r["kind"] for r in rows}
    assert {"auto_reply", "bounce", "human"} <= kinds


@pytest.mark.parametrize("started", ["script off PATH", "script on PATH", "python -m"])
def test_the_demo_prints_commands_that_work_as_typed(tmp_path, started):
    """`.venv/bin/mailbridge demo` (not on PATH) printed `mailbridge --config …`, which the
    shell could not find; and it did not say how to remove its folder."""
    script = Path(sys.executable).with_name("mailbridge")
    path = "/usr/bin:/bin" if started != "script on PATH" else f"{script.parent}:/usr/bin:/bin"
    argv = [sys.executable, "-m", "mailbridge"] if started == "python -m" else [str(script)]
    env = {**os.environ, "PATH": path}
    folder = tmp_path / "demo"
    shown = subprocess.run([*argv, "demo", "--dir", str(folder)], capture_output=True,
                           text=True, env=env, cwd=tmp_path, timeout=120)
    assert shown.returncode == 0, shown.stderr
    said = dict(line.split(": ", 1) for line in shown.stderr.splitlines() if ": " in line)
    explore = shlex.split(said["explore it"])
    assert explore[0] == {"script off PATH": str(script), "script on PATH": "mailbridge",
                          "python -m": sys.executable}[started]
    ran = subprocess.run(explore, capture_output=True, text=True, env=env, timeout=60)
    assert ran.returncode == 0 and "Cannot log in since this morning" in ran.stdout, ran.stderr
    assert shlex.split(said["remove it when done"]) == ["rm", "-r", str(folder)]


def test_the_demo_wants_a_folder_of_its_own(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    refused = CliRunner().invoke(app, ["demo", "--dir", str(mine)])
    assert refused.exit_code == 2 and "is not empty" in refused.stderr
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]


def test_init_points_to_the_installed_example_which_is_config_example_toml(tmp_path):
    """init's comments sent people to "the source tree"; the example ships in the package
    (a link to the top-level config.example.toml: one copy) and `init --example` prints it."""
    top = Path(__file__).parent.parent / "config.example.toml"
    shipped = top.parent / "mailbridge" / "config" / "example.toml"
    assert shipped.is_symlink() and shipped.resolve() == top.resolve()
    printed = CliRunner().invoke(app, ["init", "--example"])
    assert printed.exit_code == 0 and printed.stdout == top.read_text()
    config = tmp_path / "config.toml"
    assert CliRunner().invoke(app, ["--config", str(config), "init"]).exit_code == 0
    named = [line[1:].strip() for line in config.read_text().splitlines()
             if line.startswith("#") and line.rstrip().endswith("example.toml")]
    assert named and Path(named[0]).read_text() == top.read_text()
    assert "source tree" not in config.read_text()


def test_a_closed_pipe_is_not_an_error(mb):
    spool = mb.drop_channel()
    for i in range(50):
        drop(spool, message(f"S{i}", message_id=f"{i}@pipe.test"))
    assert mb("sync").exit_code == 0
    proc = subprocess.Popen([sys.executable, "-m", "mailbridge", "--config", str(mb.config),
                             "tickets", "list", "--format", "jsonl"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # like `| head -0`: the reader is gone before the first line
    assert proc.wait(timeout=60) == 141
    assert proc.stderr.read() == b""
