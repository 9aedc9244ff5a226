"""The command line: exit codes, one-line errors without tracebacks, read-only SQL, documented commands."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mailflow.cli import cli, main

ROOT = Path(__file__).parent.parent


def run(*args, cwd=None):
    # As a user runs it: without the test session's Prefect console settings.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_LOGGING")}
    return subprocess.run([sys.executable, "-m", "mailflow.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=180, env=env)


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
    "statement,needle",
    [
        ("COPY (SELECT 1) TO '{dir}/evil.sh'", "evil.sh"),
        ("EXPORT DATABASE '{dir}/dump'", "disabled by configuration"),
        ("SET memory_limit = '10GB'", "locked"),
        ("SELECT * FROM glob('{dir}/*')", "disabled by configuration"),
        ("SELECT * FROM read_text('/proc/self/environ')", "disabled by configuration"),
        ("ATTACH '{dir}/other.duckdb' AS other", "disabled by configuration"),
        ("INSTALL httpfs", "disabled by configuration"),
        ("LOAD httpfs", "disabled"),
        ("SET enable_external_access = true", "locked"),
    ],
)
def test_sql_reads_the_warehouse_and_nothing_else(tmp_path, capsys, statement, needle):
    home = tmp_path / "h"
    assert main(["--home", str(home), "init"]) == 0
    capsys.readouterr()
    before = sorted(tmp_path.rglob("*"))
    assert main(["--home", str(home), "sql", statement.format(dir=tmp_path)]) == 2
    out = capsys.readouterr()
    assert out.out == "" and needle in out.err and out.err.count("\n") == 1 and "Traceback" not in out.err
    assert sorted(tmp_path.rglob("*")) == before


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


def test_a_campaign_naming_an_unknown_pool_is_refused_at_plan(tmp_path):
    (tmp_path / "c.yaml").write_text("name: x\nfrom: a@example.com\ntemplate: newsletter\nsubject: s\ntransport: bulk\n")
    out = run("--home", str(tmp_path / "h"), "plan", str(tmp_path / "c.yaml"), cwd=tmp_path)
    assert out.returncode == 2 and "no SMTP pool named 'bulk' (known: default)" in out.stderr
    assert out.stderr.count("\n") == 1


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


def test_lists_rules_round_trip(tmp_path):
    home = str(tmp_path / "h")
    assert run("--home", home, "lists", "block", "*@Spam.Example").returncode == 0
    assert run("--home", home, "lists", "allow", "ok@spam.example").returncode == 0
    shown = run("--home", home, "--json", "lists", "show")
    assert {(r["action"], r["pattern"]) for r in json.loads(shown.stdout)} == {("block", "*@spam.example"), ("allow", "ok@spam.example")}
    bad = run("--home", home, "lists", "block", "re:(?<=x)y")
    assert bad.returncode == 2 and "look-around" in bad.stderr
    assert run("--home", home, "lists", "remove", "*@spam.example").returncode == 0
    assert run("--home", home, "lists", "remove", "*@spam.example").returncode == 2


def test_export_neutralises_formulas(tmp_path, con):
    from tasks.ingest import ingest_file
    from tasks.export import export_table
    from tests.conftest import write_csv

    ingest_file(con, write_csv(tmp_path / "a.csv", 'email,first_name,last_name\na@example.com,=HYPERLINK("http://x"),@SUM(A1)\nb@example.com,-1+2,\tTab\n'))
    out = tmp_path / "s.csv"
    assert export_table(con, "subscribers", out) == 2
    text = out.read_text()
    assert "'=HYPERLINK" in text and "'@SUM(A1)" in text and "'-1+2" in text
    import polars as pl

    from tasks.export import formula_safe

    assert formula_safe(pl.DataFrame({"a": ["\tx", "\rx", "+1", "ok", None]}))["a"].to_list() == ["'\tx", "'\rx", "'+1", "ok", None]
    assert export_table(con, "subscribers", tmp_path / "s.parquet") == 2
    assert pl.read_parquet(tmp_path / "s.parquet")["first_name"].to_list() == ['=HYPERLINK("http://x")', "-1+2"]


@pytest.mark.parametrize(
    "content,needle",
    [(b"", "the file is empty"), (b"name\nAnn\n", "no email column"), (bytes(range(256)) * 100, "not valid UTF-8")],
)
def test_unreadable_ingest_exits_2_before_prefect_starts(tmp_path, content, needle):
    path = tmp_path / "in.csv"
    path.write_bytes(content)
    out = run("--home", str(tmp_path / "h"), "ingest", str(path))
    assert out.returncode == 2, out.stderr
    assert needle in out.stderr and str(path) in out.stderr and out.stderr.count("\n") == 1


def test_glob_that_matches_nothing(tmp_path):
    out = run("--home", str(tmp_path / "h"), "ingest", str(tmp_path / "*.csv"))
    assert out.returncode == 2 and "no file matches" in out.stderr
