"""The command line: exit codes, one-line errors without tracebacks, read-only SQL, documented commands."""

import json
import os
import re
import socket
import stat
import subprocess
import sys
from collections import Counter
from email import message_from_bytes
from email.policy import default
from pathlib import Path
from types import SimpleNamespace

import pytest

from mailflow.cli import cli, main

ROOT = Path(__file__).parent.parent


def run(*args, cwd=None, env=None, timeout=180):
    # As a user runs it: without the test session's Prefect console settings, under the usual umask.
    env = env or {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_LOGGING")}
    return subprocess.run([sys.executable, "-m", "mailflow.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout, env=env, umask=0o022)


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


def test_track_serve_refuses_a_port_in_use_or_an_unwritable_home_in_one_line_before_serving(tmp_path):
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PREFECT_LOGGING")},
           "MAILFLOW_TRACKING__SECRET": "s3cret"}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        out = run("--home", str(tmp_path / "h"), "track", "serve", "--port", port, env=env, timeout=60)
    assert out.returncode == 2 and out.stderr == f"mailflow: cannot listen on 127.0.0.1:{port}: Address already in use\n"
    home = tmp_path / "h2"
    home.mkdir()
    (home / "events").write_text("not a folder")  # as a home on a broken or read-only disk: no event can be written
    out = run("--home", str(home), "track", "serve", "--port", "1", env=env, timeout=60)  # refused before it listens
    assert out.returncode == 2 and out.stderr.endswith(f"mailflow: cannot write {home / 'events'}: File exists\n")
    assert "tracking service on" not in out.stderr and "Traceback" not in out.stderr


def test_a_home_that_cannot_be_created_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "file").write_text("a file where the home's parent should be")
    out = run("--home", str(tmp_path / "file" / "h"), "init")
    assert out.returncode == 2 and out.stderr.startswith(f"mailflow: {tmp_path / 'file' / 'h'}: cannot create the home (")
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr


def test_a_campaign_naming_an_unknown_pool_is_refused_at_plan(tmp_path):
    (tmp_path / "c.yaml").write_text("name: x\nfrom: a@example.com\ntemplate: newsletter\nsubject: s\ntransport: bulk\n")
    out = run("--home", str(tmp_path / "h"), "plan", str(tmp_path / "c.yaml"), cwd=tmp_path)
    assert out.returncode == 2 and "no SMTP pool named 'bulk' (known: default)" in out.stderr
    assert out.stderr.count("\n") == 1


@pytest.mark.flow
def test_plan_before_any_ingest_warns_why_nobody_is_mailed_and_a_replan_works(prefect_harness, tmp_path, capsys):
    (tmp_path / "c.yaml").write_text("name: first\nfrom: a@example.com\ntemplate: newsletter\nsubject: s\n")
    home = str(tmp_path / "h")
    assert main(["--home", home, "plan", str(tmp_path / "c.yaml")]) == 0
    out = capsys.readouterr()
    assert out.out.startswith("campaign first: planned, 0 recipients in 0 chunks\n  matched 0, excluded 0\n")
    assert out.err == "mailflow: warning: nobody to mail: no subscriber matches the campaign's lists, segments and " \
                      "where (none ingested yet? run `mailflow ingest FILE`)\n"
    (tmp_path / "s.csv").write_text("email,first_name\na@example.com,A\nb@example.com,B\n")
    assert main(["--home", home, "ingest", str(tmp_path / "s.csv")]) == 0
    capsys.readouterr()
    assert main(["--home", home, "plan", str(tmp_path / "c.yaml")]) == 0
    out = capsys.readouterr()
    assert out.out.startswith("campaign first: planned (re-planned), 2 recipients in 1 chunks\n") and out.err == ""


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
    from mailflow.tasks.aggregate.export import export_table
    from mailflow.tasks.ingest.ingest import ingest_file
    from tests.support.inputs import write_csv

    ingest_file(con, write_csv(tmp_path / "a.csv", 'email,first_name,last_name\na@example.com,=HYPERLINK("http://x"),@SUM(A1)\nb@example.com,-1+2,\tTab\n'))
    out = tmp_path / "s.csv"
    assert export_table(con, "subscribers", out) == 2
    text = out.read_text()
    assert "'=HYPERLINK" in text and "'@SUM(A1)" in text and "'-1+2" in text
    import polars as pl

    from mailflow.tasks.aggregate.export import formula_safe

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


@pytest.mark.parametrize("pattern,engine,reason", [
    ("re:a{1001}", "DuckDB", "invalid repetition size"),   # RE2 caps repetition at 1000; Python and Rust do not
    ("re:(?x) a b", "DuckDB", "invalid perl operator"),    # Rust regex knows (?x), RE2 does not
    ("re:a++", "DuckDB", "bad repetition operator"),
    ("re:a{,3}", "Polars", "repetition quantifier"),         # RE2 reads it as a literal, Rust refuses it
    ("re:\\101", "Polars", "backreferences are not supported"),
    ("re:(?<=x)y", "Polars", "look-around"),                 # Python's re accepts look-around; neither engine does
    ("re:(a)\\1", "Polars", "backreferences"),
])
def test_a_regex_rule_either_engine_cannot_run_is_refused(tmp_path, pattern, engine, reason):
    home = str(tmp_path / "h")
    for command in ("block", "allow"):
        out = run("--home", home, "lists", command, pattern)
        assert out.returncode == 2, out.stderr
        assert out.stderr.count("\n") == 1 and repr(pattern) in out.stderr and engine in out.stderr and reason in out.stderr
    assert json.loads(run("--home", home, "--json", "lists", "show").stdout) == []


def test_a_regex_rule_both_engines_run_is_accepted_and_applied_by_both(tmp_path):
    from mailflow.tasks.core.warehouse import connect
    from mailflow.tasks.ingest.ingest import ingest_file
    from mailflow.tasks.plan.audience import plan
    from mailflow.tasks.plan.campaign import CampaignSpec
    from tests.support.inputs import write_csv

    home = tmp_path / "h"
    with connect(home / "mailflow.duckdb") as con:
        ingest_file(con, write_csv(tmp_path / "a.csv", "email\ntest1@example.com\nann@example.com\nbob@other.example\n"))
    # \pL and \z are not Python's re: a rule is checked by the engines that run it, not by Python.
    for pattern in ("re:^test[0-9]+@", "re:^\\pL+@other\\.example\\z", "re:a{1000}"):
        out = run("--home", str(home), "lists", "block", pattern)
        assert out.returncode == 0, out.stderr
    with connect(home / "mailflow.duckdb") as con:
        spec = CampaignSpec(name="R", campaign_id="r", from_addr="a@example.com", subject="s", template="newsletter")
        assert plan(con, home, spec, 10).audience_size == 1  # DuckDB (RE2) left out the two blocked subscribers
    with connect(home / "mailflow.duckdb") as con:
        late = ingest_file(con, write_csv(tmp_path / "b.csv", "email\ntest2@example.com\ncarl@other.example\n"))
        assert late.quarantined == 2  # Polars (Rust regex) quarantined both at ingest


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """`mailflow demo` as a user runs it (umask 022), with a Prefect home of its own (so its ephemeral
    server's database is there) and, in its environment, a DKIM key and a relay password."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    root = tmp_path_factory.mktemp("demo")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    password = "relay-pw-5f0c2a9e"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MAILFLOW_"))}
    env |= {"PREFECT_HOME": str(root / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
            "MAILFLOW_DKIM__DOMAIN": "example.com", "MAILFLOW_DKIM__SELECTOR": "mf1", "MAILFLOW_DKIM__PRIVATE_KEY": key,
            "MAILFLOW_SMTP__POOLS__BACKUP__RELAYS": f'["mailer:{password}@127.0.0.1:2526?tls=starttls"]'}
    home = root / "home"
    out = run("--home", str(home), "demo", env=env, timeout=900)
    assert out.returncode == 0, out.stderr
    return SimpleNamespace(home=home, prefect_home=root / "prefect", output=out.stdout + out.stderr,
                           secrets={"tracking secret": (home / "demo-secret").read_text().strip(),
                                    "DKIM key": key.splitlines()[10], "relay password": password})


@pytest.mark.integration
def test_the_demo_leaves_no_secret_in_prefects_database_or_its_home(demo_run):
    prefect_files = [p for p in demo_run.prefect_home.rglob("*") if p.is_file()]
    database = [p.read_bytes() for p in prefect_files if p.name.startswith("prefect.db")]
    assert any(str(demo_run.home).encode() in d for d in database), "the flow runs and their parameters are stored there"
    home_files = [p for p in demo_run.home.rglob("*") if p.is_file() and p.name != "demo-secret"]
    assert any(b"DKIM-Signature:" in p.read_bytes() for p in (demo_run.home / "maildir" / "new").iterdir()), \
        "the DKIM key reached the sending processes through their environment"
    for what, secret in demo_run.secrets.items():
        assert secret not in demo_run.output, what
        assert [str(p) for p in prefect_files + home_files if secret.encode() in p.read_bytes()] == [], what


@pytest.mark.integration
def test_the_demo_runs_the_preflight_and_nothing_fails(demo_run):
    table = re.search(r"preflight of campaign demo-newsletter: (\d+) pass, (\d+) warn, 0 fail\n", demo_run.output)
    assert table, "the demo prints its preflight table before the send"
    assert "  PASS  spam " in demo_run.output and "  WARN  spf            not checked: listed in preflight.skip" in demo_run.output


@pytest.mark.integration
def test_the_demo_home_and_everything_in_it_are_private(demo_run):
    def loose(root: Path) -> list[str]:
        paths = [root, *root.rglob("*")]
        return [f"{p} {stat.S_IMODE(p.lstat().st_mode):04o}" for p in paths
                if stat.S_IMODE(p.lstat().st_mode) & ~(0o700 if p.is_dir() else 0o600)]

    assert {p.name for p in demo_run.home.iterdir()} >= {"mailflow.duckdb", "campaigns", "ledger", "maildir"}
    assert loose(demo_run.home)[:5] == []
    assert loose(demo_run.prefect_home)[:5] == [], "Prefect's server, started by the command, inherits its umask"


def test_a_home_open_to_others_is_closed_and_exports_are_private(tmp_path):
    home = tmp_path / "h"
    home.mkdir(mode=0o755)
    home.chmod(0o755)
    out = run("--home", str(home), "init")
    assert out.returncode == 0 and "now 0700" in out.stderr
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "mailflow.duckdb").stat().st_mode) == 0o600
    assert "0700" not in run("--home", str(home), "init").stderr, "said once"
    earlier = tmp_path / "earlier.csv"
    earlier.write_text("old")
    earlier.chmod(0o644)
    for output in (earlier, tmp_path / "new.parquet"):
        assert run("--home", str(home), "export", "subscribers", "-o", str(output)).returncode == 0
        assert stat.S_IMODE(output.stat().st_mode) == 0o600, output


def test_a_shared_directory_as_home_is_left_open_with_a_warning(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp: closing it would break everyone else
    out = run("--home", str(shared), "init")
    assert out.returncode == 0 and "warning: home" in out.stderr and "open to others" in out.stderr
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777


@pytest.mark.parametrize(
    "name,content,options,needle",
    [
        ("in.csv", b"email\na@example.com\n", ["--encoding", "rot13"], "--encoding 'rot13' is not a text encoding"),
        ("in.csv", b"email\na@example.com\n", ["--encoding", "hex"], "--encoding 'hex' is not a text encoding"),
        ("deep.json", b"[" * 100_000 + b"]" * 100_000, [], "deep.json: element 1 of the JSON array is nested too deeply"),
        ("header_only.csv", b"name,country\n", [], "header_only.csv: no email column"),
        ("wide.csv", b"email" + b",x" * 150_000 + b"\n", [], "wide.csv: 150,001 columns, more than the limit of 1,000"),
    ],
    ids=["rot13", "hex", "deep_json", "header_without_email", "wide_header"],
)
def test_hostile_ingest_input_exits_2_with_one_line(tmp_path, name, content, options, needle):
    path = tmp_path / name
    path.write_bytes(content)
    out = run("--home", str(tmp_path / "h"), "ingest", *options, str(path))
    assert out.returncode == 2, out.stderr
    assert needle in out.stderr and out.stderr.count("\n") == 1 and "Traceback" not in out.stderr


@pytest.mark.integration
def test_after_the_demo_every_table_and_view_in_the_warehouse_can_be_queried(demo_run):
    import duckdb

    with duckdb.connect(str(demo_run.home / "mailflow.duckdb"), read_only=True) as con:
        relations = con.execute("SELECT table_name, table_type FROM information_schema.tables "
                                "WHERE table_schema = 'main' ORDER BY 1").fetchall()
        names = {name for name, _ in relations}
        assert {"subscribers", "quarantine", "campaign_recipients", "deliveries", "campaign_stats"} <= names
        assert not {n for n in names if n.startswith("input_") or n == "campaign_condition"}, "staging views left"
        for name, _ in relations:  # a view over a deleted file fails here
            con.execute(f'SELECT * FROM "{name}" LIMIT 1').fetchall()


@pytest.mark.integration
def test_the_demo_serves_its_own_tracking_links_and_the_report_counts_what_its_readers_did(demo_run):
    import duckdb

    readers = re.search(r"^readers \(simulated over HTTP\): (.*)$", demo_run.output, re.MULTILINE).group(1)
    did = {v: tuple(map(int, n)) for v, *n in re.findall(
        r"(\w+) opened (\d+) \((\d+) pixel fetches\), clicked (\d+), unsubscribed (\d+)", readers)}
    assert set(did) == {"A", "B"}
    page = Path(re.search(r"^report: +(\S+)", demo_run.output, re.MULTILINE).group(1))
    assert page.parent == demo_run.home / "reports" and page.read_text().count("<svg") == 5, "the HTML report, with its charts"
    report = json.loads(run("--home", str(demo_run.home), "report", page.stem, "--format", "json").stdout)
    rows = {r["variant"]: r for r in report["engagement"]["variants"]}
    for variant, (opened, opens, clicked, unsubscribed) in did.items():
        row = re.search(rf"^\| {variant} \| .*$", demo_run.output.split("### Engagement per variant")[1], re.MULTILINE).group(0)
        cells = [c.strip() for c in row.strip("|").split("|")]
        delivered, opens_raw, opens_human, clicks_raw, clicks_human = (int(cells[i]) for i in (1, 2, 3, 6, 7))
        assert (opens_raw, clicks_raw, int(cells[11])) == (opened, clicked, unsubscribed), variant
        assert opens_human <= opens_raw and clicks_human <= clicks_raw, variant
        assert (rows[variant]["total_opens"], rows[variant]["total_clicks"]) == (opens, clicked), variant
        assert 0.3 < opened / delivered < 0.5 and 0.1 < clicked / delivered < 0.2 and opens > opened, variant
    assert sum(n[3] for n in did.values()) == 3
    assert "human = machine opens and clicks left out" in demo_run.output
    with duckdb.connect(str(demo_run.home / "mailflow.duckdb"), read_only=True) as con:
        by_type = dict(con.execute("SELECT type, count(*) FROM events GROUP BY type").fetchall())
        unsubscribed = con.execute("SELECT count(*) FROM subscribers AS s JOIN suppressions USING (email) "
                                   "WHERE s.status = 'unsubscribed' AND cause = 'unsubscribe'").fetchall()[0][0]
        rejects = con.execute("SELECT count(*) FROM event_rejects").fetchall()[0][0]
        # the few readers behind Gmail's image proxy are flagged, and nobody else: the demo's readers act within a
        # second of delivery, so it turns the timing rules off (they would flag every reader of the last variant)
        machine = dict(con.execute("SELECT machine_reason, count(DISTINCT subscriber_id) FROM events WHERE is_machine "
                                   "GROUP BY ALL").fetchall())
    assert set(machine) == {"image_proxy:google"} and 0 < machine["image_proxy:google"] < 0.1 * sum(o for o, *_ in did.values())
    fetched = re.search(r"^bounce mailbox: fetched (\d+) message\(s\) from \S+ \((\d+) hard, (\d+) auto_reply; 0 unmapped\)",
                        demo_run.output, re.MULTILINE)
    messages, hard, auto = map(int, fetched.groups())
    assert messages == hard + auto and hard >= 3 and auto >= 1, "late.example's DSNs and away.example's auto-replies"
    assert by_type == {"open": sum(n[1] for n in did.values()), "click": sum(n[2] for n in did.values()),
                       "unsubscribe": 3, "bounce": hard, "auto_reply": auto}
    assert (unsubscribed, rejects) == (3, 0)


AB_CAMPAIGN = """\
name: spring-ab
from: "Shop <news@example.com>"
lists: [news]
segment: {include: [paying], exclude: [list:staff]}
template: newsletter
subject: "Spring news, {{ subscriber.first_name }}"
variants:
  - {name: A}
  - {name: B, subject: "B: last days of spring"}
  - {name: C, weight: 2, subject: "C: {{ variant }} promo", template: promo}
ab: {test_fraction: 0.6, holdout_fraction: 0.2}
"""


@pytest.mark.flow
def test_an_ab_campaign_through_the_command_mails_each_variant_its_own_message_and_never_the_holdout_or_remainder(
        prefect_harness, tmp_path, capsys, monkeypatch):
    from mailflow.tasks.demo.receiver import Receiver

    monkeypatch.chdir(tmp_path)  # the project: its own segment and template
    (tmp_path / "sql" / "segments").mkdir(parents=True)
    (tmp_path / "sql" / "segments" / "paying.sql").write_text("-- On a paid plan.\nattributes->>'plan' = 'pro'\n")
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "promo.txt.j2").write_text("Promo for {{ subscriber.first_name }}, variant {{ variant }}\n")
    rows = "".join(f"u{i}@example.com,U{i},{'pro' if i % 4 else 'free'}\n" for i in range(400))
    (tmp_path / "s.csv").write_text("email,first_name,plan\n" + rows)
    (tmp_path / "staff.csv").write_text("email,first_name,plan\nu1@example.com,U1,pro\nu2@example.com,U2,pro\n")
    home = str(tmp_path / "h")

    def mailflow(*args):
        code = main(["--home", home, *args])
        out, err = capsys.readouterr()
        return code, out, err

    assert mailflow("ingest", "s.csv", "--list", "news")[0] == 0
    assert mailflow("ingest", "staff.csv", "--list", "staff")[0] == 0
    (tmp_path / "bad.yaml").write_text(AB_CAMPAIGN.replace("name: spring-ab", "name: bad") + "where: \"plann = 'x'\"\n")
    code, _, err = mailflow("plan", "bad.yaml")
    assert code == 2 and err.splitlines()[-1].startswith("mailflow: bad.yaml: field 'where': ")  # above: Prefect's log
    assert not (tmp_path / "h" / "campaigns" / "bad").exists(), "nothing written"

    (tmp_path / "ab.yaml").write_text(AB_CAMPAIGN)
    code, out, err = mailflow("plan", "ab.yaml")
    assert code == 0 and err == ""
    code, groups, _ = mailflow("--json", "sql", "SELECT s.email, r.variant FROM campaign_recipients r "
                                                "JOIN subscribers s USING (subscriber_id)")
    variant_of = {r["email"]: r["variant"] for r in json.loads(groups)}
    count = Counter(variant_of.values())
    assert len(variant_of) == 300 - 2, "the paying, less the staff list"
    assert set(count) == {"A", "B", "C", "holdout", "remainder"}
    assert (f"split: A {count['A']}, B {count['B']}, C {count['C']}, remainder {count['remainder']} (held for the A/B "
            f"winner), holdout {count['holdout']} (mailed nothing)") in out
    assert "matched 300, excluded 2: exclude:staff 2" in out and "chunks: 3 due, 1 held for the A/B winner" in out

    code, out, _ = mailflow("campaigns", "show", "spring-ab")
    assert code == 0 and "-> planned  by mailflow plan" in out and "planned -> planned" not in out
    assert "variants: A/B test on 60% of the audience, holdout 20%; winner by unique_clicks after 4h" in out
    assert f"holdout: {count['holdout']} recipients, mailed nothing" in out
    assert f"remainder: {count['remainder']} recipients, held for the A/B winner" in out
    assert "C: " in out and "template=promo" in out

    monkeypatch.setenv("MAILFLOW_TRACKING__SECRET", "test-secret")
    with Receiver(record=True) as rx:
        monkeypatch.setenv("MAILFLOW_SMTP__POOLS__DEFAULT__RELAYS", f'["127.0.0.1:{rx.port}"]')
        code, out, err = mailflow("send", "spring-ab", "--no-progress", "--skip-preflight")  # tests/test_preflight.py
        assert code == 0, err
        received = [(m.recipients, message_from_bytes(m.data, policy=default)) for m in rx.received]
    assert f"{count['remainder']} recipients held for the A/B winner" in out
    mailed = Counter(variant_of[to] for recipients, _ in received for to in recipients)
    assert mailed == {v: count[v] for v in ("A", "B", "C")}, "each tested recipient once; no holdout, no remainder"
    for recipients, message in received:
        variant = variant_of[recipients[0]]
        subject = {"A": f"Spring news, U{recipients[0][1:].split('@')[0]}", "B": "B: last days of spring",
                   "C": "C: C promo"}[variant]
        assert message["Subject"] == subject
        body = message.get_body(("plain",)).get_content()
        assert ("variant C" in body) == (variant == "C") and ("Here is what is new" in body) == (variant != "C")

    code, out, _ = mailflow("report", "spring-ab")
    assert "run `mailflow aggregate`" in out, "the ledgers are ahead of the warehouse"
    assert mailflow("aggregate")[0] == 0
    code, out, _ = mailflow("report", "spring-ab")
    assert "run `mailflow aggregate`" not in out
    assert f"{count['holdout']} in the holdout were mailed nothing" in out
    sent = count["A"] + count["B"] + count["C"]
    assert f"| total | 298 | {sent} | {sent} | 0 | 0 | 0 | 0 | 0 | 0 | {count['remainder']} |" in out
    code, out, _ = mailflow("--json", "sql", "SELECT rule, count(*) AS n FROM campaign_exclusions GROUP BY ALL")
    assert json.loads(out) == [{"rule": "exclude:staff", "n": 2}]


def test_a_send_with_nothing_due_says_so_and_when_the_next_chunk_is(capsys):
    from mailflow.cli.output import print_send

    progress = {"pending": 40, "waiting_chunks": 1, "next_due": "2026-12-03T00:00:00+00:00", "held": 12, "deferred": 0,
                "next_retry": None}
    print_send({"campaign_id": "spring", "state": "scheduled", "progress": progress})
    assert capsys.readouterr().out.splitlines() == [
        "nothing sent: no chunk is due yet", "1 chunk waits until 2026-12-03T00:00Z (`mailflow send --due` sends it then)",
        "12 recipients held for the A/B winner", "campaign spring: scheduled"]
