"""The command line: exit codes, one-line errors without tracebacks, read-only SQL, documented commands."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mailflow.cli import cli, main

ROOT = Path(__file__).parent.parent


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "mailflow.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_init_then_sql(tmp_path):
    home = str(tmp_path / "h")
    assert run("--home", home, "init").returncode == 0
    out = run("--home", home, "--json", "sql", "select count(*) as n from subscribers")
    assert out.returncode == 0 and json.loads(out.stdout) == [{"n": 0}]


def test_sql_is_read_only(tmp_path):
    home = str(tmp_path / "h")
    run("--home", home, "init")
    out = run("--home", home, "sql", "delete from subscribers")
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "read-only" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize(
    "args,needle",
    [
        (["ingest", "no-such-file.csv"], "no-such-file.csv: no such file"),
        (["plan", "no-such-campaign.yaml"], "no such campaign file"),
        (["send", "never-planned"], "is not planned"),
        (["report", "x"], "no warehouse yet"),
        (["--config", "missing.toml", "init"], "missing.toml: config file not found"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, args, needle):
    out = run("--home", str(tmp_path / "h"), *args, cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert needle in out.stderr and out.stderr.count("\n") == 1 and "Traceback" not in out.stderr


def test_debug_shows_the_traceback(tmp_path):
    out = run("--debug", "--home", str(tmp_path / "h"), "send", "never-planned")
    assert out.returncode == 2 and "Traceback" in out.stderr


def test_usage_error_is_exit_2(capsys):
    assert main(["no-such-command"]) == 2


def all_commands(group=cli, prefix=""):
    for name, command in group.commands.items():
        yield f"{prefix}{name}", command
        if hasattr(command, "commands"):
            yield from all_commands(command, f"{prefix}{name} ")


def test_every_command_is_in_the_readme_with_its_help():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name, command in all_commands():
        assert re.search(rf"mailflow( --[a-z]+( \S+)?)* {name}\b", readme), f"README does not show `mailflow {name}`"
        summary = command.get_short_help_str(limit=300).rstrip(".")
        assert summary in readme, f"README lacks the help text of `mailflow {name}`: {summary!r}"
