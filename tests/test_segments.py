"""Saved segments: files, composition, parameters, the guard, targeting with lists and segments, the CLI."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import duckdb
import pytest

from mailflow.cli import main
from mailflow.errors import MailflowError
from mailflow.tasks.plan.segment_files import BUILTIN_DIR, all_segments, segment_dirs
from mailflow.tasks.plan.segments import parse_params, target_audience
from tests.support.history import add_delivery, add_event, add_subscriber

ANN, BOB, CAT, DAN, EVE, FAY = range(1, 7)


@pytest.fixture
def history(con):
    """Six subscribers, two lists, deliveries and events (machine ones, an untraced bounce) of two campaigns."""
    add_subscriber(con, ANN, "ann@gmail.com", 200, ("news",))
    add_subscriber(con, BOB, "bob@googlemail.com", 10, ("news",))
    add_subscriber(con, CAT, "cat@example.com", 10, ("vip",))
    add_subscriber(con, DAN, "dan@example.com", 300, ("news", "vip"))
    add_subscriber(con, EVE, "eve@gmail.com", 400)
    add_subscriber(con, FAY, "fay@example.com", 5, ("news",), status="unsubscribed")
    add_event(con, "e1", ANN, "open", 5)
    add_event(con, "e2", DAN, "click", 100)
    add_event(con, "e3", DAN, "open", 2, is_machine=True)  # a privacy proxy's open
    add_event(con, "e4", CAT, "click", 3, campaign_id="c2")
    add_event(con, "e5", None, "bounce", 1, campaign_id=None)  # could not be traced to a send
    add_event(con, "e6", EVE, "click", 20, is_machine=True)  # a link scanner
    add_delivery(con, "c1", ANN, "delivered", 30)
    add_delivery(con, "c1", DAN, "bounced", 30)
    return con


@pytest.fixture
def project(tmp_path):
    folder = tmp_path / "sql" / "segments"
    folder.mkdir(parents=True)
    return folder


def write(folder, name, text):
    (folder / f"{name}.sql").write_text(text)
    return folder / f"{name}.sql"


def target(con, folder=None, *, lists=(), include=(), exclude=(), where=None, params=None, campaign_id="c9"):
    dirs = segment_dirs(folder) if folder else (BUILTIN_DIR,)
    size = target_audience(con, lists=list(lists), include=list(include), exclude=list(exclude), where=where,
                           params=params or {}, campaign_id=campaign_id, segment_dirs=dirs)
    ids = {i for (i,) in con.execute("SELECT subscriber_id FROM campaign_target").fetchall()}
    assert size == len(ids)
    return ids


@pytest.mark.parametrize("name,params,expected", [
    ("engaged_90d", {}, {ANN, CAT}),  # DAN's click is too old, his recent open a machine's
    ("engaged_90d", {"since": "150d"}, {ANN, CAT, DAN}),
    ("clicked_campaign", {"campaign": "c1"}, {DAN}),  # EVE's click was a scanner's
    ("clicked_campaign", {"campaign": "C2"}, {CAT}),  # a name, made an id
    ("gmail", {}, {ANN, BOB, EVE}),
    ("recent_signups", {}, {BOB, CAT, FAY}),
    ("recent_signups", {"since": "7d"}, {FAY}),
    ("lapsed", {}, {DAN, EVE}),  # composed: not recent and not engaged; the untraced bounce empties nothing
])
def test_each_builtin_segment_selects_its_members(history, name, params, expected):
    assert target(history, include=[name], params=params) == expected


def test_clicked_campaign_defaults_to_the_planned_campaign(history):
    assert target(history, include=["clicked_campaign"], campaign_id="c2") == {CAT}


def test_a_segment_may_include_a_segment_that_includes_another(history, project):
    write(project, "outer", "-- gmail people who engaged, or vip\nsegment('inner') OR subscriber_id = 3 -- cat\n")
    write(project, "inner", "segment('gmail') AND segment('engaged_90d');\n")
    assert target(history, project, include=["outer"]) == {ANN, CAT}


def test_a_project_segment_hides_the_builtin_of_its_name(history, project):
    write(project, "gmail", "-- ours\nemail LIKE '%@gmail.com'")
    assert target(history, project, include=["gmail"]) == {ANN, EVE}
    assert {s.name: s.source for s in all_segments(segment_dirs(project))}["gmail"] == "project"
    assert {s.name: s.source for s in all_segments(segment_dirs(project))}["lapsed"] == "built-in"


@pytest.mark.parametrize("files,cycle", [
    ({"a": "segment('b')", "b": "email = 'x' OR segment('a')"}, "a -> b -> a"),
    ({"a": "NOT segment('a')"}, "a -> a"),
    ({"a": "segment('b')", "b": "segment('c')", "c": "segment('gmail') AND segment('b')"}, "b -> c -> b"),
])
def test_an_include_cycle_is_refused_naming_it(history, project, files, cycle):
    for name, text in files.items():
        write(project, name, text)
    with pytest.raises(MailflowError, match=f"segments include each other: {cycle}$"):
        target(history, project, include=["a"])


def test_a_missing_segment_is_named_with_the_file_that_calls_it(history, project):
    calling = write(project, "a", "segment('gmail') OR segment('nope')")
    with pytest.raises(MailflowError) as refused:
        target(history, project, include=["a"])
    assert str(refused.value).startswith(f"{calling}: segment('nope') names no segment")


@pytest.mark.parametrize("text,message", [
    ("email = 'x' AND", "syntax error"),
    ("email = ", "syntax error"),
    ("-- only a comment\n", "holds no condition"),
    ("nosuchcolumn = 1", "nosuchcolumn"),
    ("email", "not a true/false condition (it gives VARCHAR)"),
    ("subscriber_id + 1", "not a true/false condition"),
    ("segment(gmail)", "segment() takes one quoted segment name"),
    ("segment('gm' || 'ail')", "segment() takes one quoted segment name"),
    ("segment('Gmail')", "is not a segment name"),
    ("EXISTS (SELECT 1 FROM deliveries WHERE segment('gmail'))", "may not stand inside a subquery"),
])
def test_a_bad_segment_fails_naming_its_file_and_writes_nothing(history, project, text, message):
    bad = write(project, "bad", text)
    write(project, "uses_bad", "segment('gmail') AND segment('bad')")
    for include in (["bad"], ["uses_bad"]):  # the error names the broken file, not the one including it
        with pytest.raises(MailflowError, match=re.escape(message)) as refused:
            target(history, project, include=include)
        assert str(refused.value).startswith(f"{bad}: ") and "\n" not in str(refused.value)
    tables = history.execute("SELECT table_name FROM duckdb_tables() WHERE NOT temporary").fetchall()
    assert ("campaign_target",) not in tables and ("segment_members",) not in tables


def test_a_segment_that_fails_on_some_row_names_its_file(history, project):
    history.execute("UPDATE subscribers SET attributes = '{\"age\": \"old\"}' WHERE subscriber_id = 4")
    bad = write(project, "adults", "(attributes->>'age')::INTEGER >= 18")
    with pytest.raises(MailflowError, match="Could not convert") as refused:
        target(history, project, include=["adults"])
    assert str(refused.value).startswith(f"{bad}: ")
    with pytest.raises(MailflowError, match="^campaign field 'where': .*Could not convert"):
        target(history, where="(attributes->>'age')::INTEGER >= 18")


@pytest.mark.parametrize("text,message", [
    ("length(read_text('/etc/hostname')) > 0", "'read_text' is not allowed"),
    ("EXISTS (SELECT 1 FROM read_csv('/etc/passwd'))", "'read_csv' are not allowed"),
    ("TRUE; COPY subscribers TO '/tmp/x.csv'", "single condition"),
    ("TRUE; DELETE FROM subscribers", "single condition"),
    ("TRUE) OR (TRUE", "syntax error"),
    ("TRUE UNION SELECT subscriber_id FROM subscribers", "single condition"),
    ("subscriber_id = $1", "parameters other than $since and $campaign"),
    ("created_at > $until", "parameters other than $since and $campaign"),
    ("EXISTS (SELECT 1 FROM duckdb_settings())", "not allowed"),
    ("EXISTS (SELECT 1 FROM address_rules)", "not 'address_rules'"),
    ("EXISTS (SELECT 1 FROM segment_members)", "not 'segment_members'"),
    ("current_setting('enable_external_access')", "'current_setting' is not allowed"),
])
def test_a_hostile_segment_is_refused_before_it_runs(history, project, tmp_path, text, message):
    bad = write(project, "bad", text)
    before = history.execute("SELECT count(*) FROM subscribers").fetchall()
    with pytest.raises(MailflowError, match=re.escape(message)) as refused:
        target(history, project, include=["bad"])
    assert str(refused.value).startswith(f"{bad}: ")
    assert history.execute("SELECT count(*) FROM subscribers").fetchall() == before
    assert not (tmp_path / "x.csv").exists()


def test_segment_parameters_parse_durations_and_dates():
    now = datetime(2026, 6, 1, 12, tzinfo=UTC)
    assert parse_params({}, campaign_id="c", now=now) == {"since": now - timedelta(days=90), "campaign": "c"}
    assert parse_params({"since": "12h"}, now=now)["since"] == now - timedelta(hours=12)
    assert parse_params({"since": "2w"}, now=now)["since"] == now - timedelta(weeks=2)
    assert parse_params({"since": "2026-01-02"}, now=now)["since"] == datetime(2026, 1, 2, tzinfo=UTC)
    assert parse_params({"since": "2026-01-02T09:00:00+09:00"}, now=now)["since"] == datetime(2026, 1, 2, tzinfo=UTC)
    assert parse_params({"campaign": "Spring Sale!"}, campaign_id="other")["campaign"] == "spring-sale"
    with pytest.raises(MailflowError, match=r"^params: since 'soon' is neither"):
        parse_params({"since": "soon"})
    with pytest.raises(MailflowError, match="unknown parameter 'until'"):
        parse_params({"until": "1d"})


def test_a_since_parameter_changes_what_a_segment_holds(history):
    assert target(history, include=["recent_signups"], params={"since": "250d"}) == {ANN, BOB, CAT, FAY}
    ten_days = (datetime.now(UTC) - timedelta(days=11)).date().isoformat()
    assert target(history, include=["recent_signups"], params={"since": ten_days}) == {BOB, CAT, FAY}


def test_include_and_exclude_take_segments_and_lists_and_exclusion_wins(history):
    assert target(history, include=["vip", "gmail"]) == {ANN, BOB, CAT, DAN, EVE}
    assert target(history, include=["vip", "gmail"], exclude=["engaged_90d", "news"]) == {EVE}
    assert target(history, include=["gmail"], exclude=["gmail"]) == set()
    assert target(history, lists=["news"], include=["gmail"]) == {ANN, BOB}
    assert target(history, lists=["news"], exclude=["list:vip"], where="created_at < now() - INTERVAL 100 DAY") == {ANN}
    assert target(history) == {ANN, BOB, CAT, DAN, EVE, FAY}  # statuses are the plan's to apply


def test_a_name_that_is_both_a_segment_and_a_list_must_say_which(history):
    history.execute("INSERT INTO lists (name) VALUES ('gmail')")
    with pytest.raises(MailflowError, match="campaign field 'segment.include': 'gmail' is both a segment and a list; "
                                            "write segment:gmail or list:gmail"):
        target(history, include=["gmail"])
    assert target(history, include=["segment:gmail"]) == {ANN, BOB, EVE}
    assert target(history, include=["list:gmail"]) == set()


@pytest.mark.parametrize("include,exclude,message", [
    (["nobody"], [], "campaign field 'segment.include': 'nobody' is neither a segment nor a list"),
    ([], ["nobody"], "campaign field 'segment.exclude': 'nobody' is neither a segment nor a list"),
    (["list:gmail"], [], "campaign field 'segment.include': no list named 'gmail'"),
    (["segment:news"], [], "campaign field 'segment.include': segment('news') names no segment"),
])
def test_an_unknown_name_is_refused_naming_the_field(history, include, exclude, message):
    with pytest.raises(MailflowError, match=re.escape(message)):
        target(history, include=include, exclude=exclude)


def test_an_unknown_list_in_lists_is_refused_naming_the_field_once_lists_exist(history, tmp_path):
    from mailflow.tasks.plan.segments import validate_targeting

    with pytest.raises(MailflowError, match=re.escape("campaign field 'lists': no list named 'newz' (lists: ")):
        target(history, lists=["newz"])
    nothing_ingested = validate_targeting(lists=["news"], include=[], exclude=[], where=None, params={}, campaign_id="c",
                                          segment_dirs=(BUILTIN_DIR,), list_names=set())
    assert nothing_ingested.lists == ("news",), "before any list exists, the plan warns why nobody is mailed"


def test_the_campaign_where_may_call_segments_and_use_parameters(history):
    assert target(history, where="segment('gmail') AND created_at < $since") == {ANN, EVE}
    with pytest.raises(MailflowError, match="campaign field 'where': segment\\('nope'\\) names no segment"):
        target(history, where="segment('nope')")


def test_a_segment_on_delivery_history(history, project):
    write(project, "bounced_before", "EXISTS (SELECT 1 FROM deliveries AS d WHERE d.subscriber_id = subscribers.subscriber_id "
                                     "AND d.status = 'bounced')")
    assert target(history, project, include=["news"], exclude=["bounced_before"]) == {ANN, BOB, FAY}


def test_targeting_is_validated_without_a_warehouse_before_prefect_starts(project, tmp_path):
    from mailflow.tasks.plan.segments import known_lists, validate_targeting

    assert known_lists(tmp_path / "none.duckdb") == set()
    write(project, "a", "segment('b')")
    write(project, "b", "segment('a')")
    with pytest.raises(MailflowError, match="a -> b -> a"):
        validate_targeting(include=["a"], exclude=[], where=None, params={}, campaign_id="c", segment_dirs=segment_dirs(project),
                           list_names=known_lists(tmp_path / "none.duckdb"))
    with pytest.raises(MailflowError, match="^c.yaml: field 'params': since 'x' is neither"):
        validate_targeting(include=[], exclude=[], where=None, params={"since": "x"}, campaign_id="c",
                           segment_dirs=segment_dirs(project), list_names=set(), origin="c.yaml:")
    ok = validate_targeting(include=["gmail", "news"], exclude=["lapsed"], where="segment('gmail')", params={}, campaign_id="c",
                            segment_dirs=segment_dirs(project), list_names={"news"})
    assert (ok.include_segments, ok.include_lists, ok.exclude_segments) == (("gmail",), ("news",), ("lapsed",))


def test_known_lists_reads_a_warehouse_read_only(history, home):
    from mailflow.tasks.plan.segments import known_lists

    history.close()
    assert known_lists(home / "mailflow.duckdb") == {"news", "vip"}


def test_targeting_runs_with_external_access_off(history):
    target(history, include=["gmail"])
    with pytest.raises(duckdb.PermissionException):
        history.execute("SELECT * FROM read_text('/etc/hostname')").fetchall()


def test_a_segment_compiles_to_hash_joins_over_a_million_subscribers(con):
    """Set-based SQL: semi-, anti- and mark hash joins DuckDB runs over all cores, never a subquery per row."""
    from mailflow.tasks.core.sqlfiles import q
    from mailflow.tasks.plan.segments import compute_sets, list_names, validate_targeting

    con.execute("""INSERT INTO subscribers (subscriber_id, email, email_original, attributes, created_at)
        SELECT i, 'u' || i || '@example.com', 'x', '{"country": "JP"}', now() - to_days((i % 400)::INTEGER)
        FROM range(1, 1000001) AS t(i)""")
    con.execute("INSERT INTO lists (name) VALUES ('news')")
    con.execute("INSERT INTO list_memberships (list_id, subscriber_id) SELECT 1, i FROM range(1, 1000001, 2) AS t(i)")
    con.execute("""INSERT INTO events (event_id, campaign_id, subscriber_id, type, occurred_at)
        SELECT 'e' || i, 'c1', i * 3, 'open', now() - to_days((i % 200)::INTEGER) FROM range(1, 300000) AS t(i)""")
    con.execute("""INSERT INTO deliveries (campaign_id, subscriber_id, variant, chunk_id, status, attempts, sent_at)
        SELECT 'c1', i, 'A', 0, 'bounced', 1, now() FROM range(1, 1000001, 7) AS t(i)""")
    where = ("attributes->>'country' = 'JP' AND created_at >= $since AND NOT EXISTS (SELECT 1 FROM deliveries AS d "
             "WHERE d.subscriber_id = subscribers.subscriber_id AND d.status = 'bounced')")
    targeting = validate_targeting(include=["lapsed", "engaged_90d"], exclude=[], where=where, params={"since": "365d"},
                                   campaign_id="c", segment_dirs=(BUILTIN_DIR,), list_names=list_names(con))
    plans = [con.execute("EXPLAIN " + c.query, {k: v for k, v in targeting.params.items() if k in c.parameters}).fetchall()[0][1]
             for _, _, c in targeting.sets]
    compute_sets(con, targeting)
    plans.append(con.execute("EXPLAIN " + q("stage_campaign_target"), {
        "lists": ["news"], "include_lists": ["news"], "include_segments": ["engaged_90d"], "exclude_lists": ["news"],
        "exclude_segments": ["lapsed"], "has_where": True, "keep_excluded": False}).fetchall()[0][1])
    for explained in (p.upper().replace("_", " ") for p in plans):
        assert "HASH JOIN" in explained, explained
        for slow in ("NESTED LOOP", "CROSS PRODUCT", "PIECEWISE", "BLOCKWISE", "CTE"):  # a CTE: materialised whole
            assert slow not in explained, explained
    assert target(con, lists=["news"], include=["engaged_90d"], where=where, params={"since": "365d"}) != set()


# --- the command line -----------------------------------------------------------------------


@pytest.fixture
def cli_home(history, home, project, monkeypatch):
    """The history warehouse, closed so commands can open it, with the project's segments in the working directory."""
    history.close()
    home.chmod(0o700)  # as `mailflow init` leaves it: no note about a home open to others
    write(project, "gmail_vips", "-- Gmail people on the vip list\nsegment('gmail') AND subscriber_id IN (\n"
          "  SELECT m.subscriber_id FROM list_memberships AS m JOIN lists AS l USING (list_id) WHERE l.name = 'vip')")
    write(project, "engaged_gmail", "segment('gmail') AND segment('engaged_90d')")
    monkeypatch.chdir(project.parent.parent)
    return home


def run(capsys, home, *args):
    code = main(["--home", str(home), *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_segments_list_shows_source_description_and_includes(cli_home, capsys):
    code, out, _ = run(capsys, cli_home, "--json", "segments", "list")
    rows = {r["name"]: r for r in json.loads(out)}
    assert code == 0
    assert rows["gmail_vips"]["source"] == "project" and rows["gmail_vips"]["description"] == "Gmail people on the vip list"
    assert rows["engaged_gmail"]["includes"] == "gmail, engaged_90d"
    assert rows["lapsed"]["source"] == "built-in" and rows["lapsed"]["includes"] == "recent_signups, engaged_90d"
    code, out, _ = run(capsys, cli_home, "segments", "list")
    assert code == 0 and "gmail_vips" in out and "Gmail people on the vip list" in out


def test_segments_list_shows_a_broken_file_and_goes_on(cli_home, capsys, project):
    write(project, "broken", "email = 'x' AND")
    code, out, _ = run(capsys, cli_home, "--json", "segments", "list")
    rows = {r["name"]: r for r in json.loads(out)}
    assert code == 0 and rows["broken"]["description"].startswith("INVALID: sql/segments/broken.sql: syntax error")
    assert rows["gmail"]["description"] == "Addresses at Gmail (gmail.com and googlemail.com)."


def test_segments_count_prints_the_size_and_a_sample(cli_home, capsys):
    code, out, _ = run(capsys, cli_home, "segments", "count", "recent_signups")
    assert code == 0 and out.startswith("segment recent_signups: 3 subscribers (2 active)\n")  # fay unsubscribed
    code, out, _ = run(capsys, cli_home, "segments", "count", "gmail")
    assert code == 0 and out.startswith("segment gmail: 3 subscribers (3 active)\n")
    assert "ann@gmail.com" in out and "bob@googlemail.com" in out and "cat@example.com" not in out
    code, out, _ = run(capsys, cli_home, "--json", "segments", "count", "engaged_gmail")
    assert code == 0 and json.loads(out)["sample"] == [{"subscriber_id": ANN, "email": "ann@gmail.com"}]
    code, out, _ = run(capsys, cli_home, "--json", "segments", "count", "recent_signups", "--param", "since=7d")
    assert code == 0 and json.loads(out)["size"] == 1


def test_segments_count_samples_ten_in_id_order(cli_home, capsys):
    import duckdb as db

    with db.connect(str(cli_home / "mailflow.duckdb")) as con:
        for i in range(100, 130):
            add_subscriber(con, i, f"many{i}@gmail.com", 1)
    code, out, _ = run(capsys, cli_home, "--json", "segments", "count", "gmail")
    data = json.loads(out)
    assert data["size"] == 33 and [r["subscriber_id"] for r in data["sample"]] == [1, 2, 5, *range(100, 107)]


def test_segments_show_prints_the_file_and_the_expanded_condition(cli_home, capsys, project):
    code, out, _ = run(capsys, cli_home, "segments", "show", "engaged_gmail")
    assert code == 0 and out.startswith("segment engaged_gmail (project): sql/segments/engaged_gmail.sql\n")
    assert "segment('gmail') AND segment('engaged_90d')" in out and "email LIKE '%@gmail.com'" in out
    code, out, _ = run(capsys, cli_home, "--json", "segments", "show", "engaged_gmail")
    data = json.loads(out)
    assert data["includes"] == ["gmail", "engaged_90d"] and "e.occurred_at >= $since" in data["expanded"]


@pytest.mark.parametrize("args,message", [
    (["segments", "count", "nope"], "no segment named 'nope'"),
    (["segments", "show", "nope"], "no segment named 'nope'"),
    (["segments", "count", "clicked_campaign"], "clicked_campaign.sql: uses $campaign, and no campaign was given"),
    (["segments", "count", "gmail", "--param", "since"], "--param 'since': write KEY=VALUE"),
    (["segments", "count", "gmail", "--param", "until=1d"], "--param: unknown parameter 'until'"),
])
def test_segments_commands_refuse_bad_input_in_one_line(cli_home, capsys, args, message):
    code, _, err = run(capsys, cli_home, *args)
    assert code == 2 and message in err and err.count("\n") == 1


def test_the_segments_dir_setting_says_where_the_projects_segments_are(cli_home, capsys, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    write(elsewhere, "cats", "-- only cat\nemail = 'cat@example.com'")
    monkeypatch.setenv("MAILFLOW_SEGMENTS_DIR", str(elsewhere))
    code, out, _ = run(capsys, cli_home, "--json", "segments", "list")
    names = {r["name"] for r in json.loads(out)}
    assert code == 0 and "cats" in names and "gmail_vips" not in names and "lapsed" in names
    code, out, _ = run(capsys, cli_home, "--json", "segments", "count", "cats")
    assert json.loads(out)["size"] == 1


def test_sunset_180d_holds_who_kept_receiving_mail_and_never_engaged_in_180_days(con):
    """From subscriber_engagement (refreshed as the aggregate does); engaged_90d counted on the same history."""
    from datetime import UTC, datetime, timedelta

    from mailflow.tasks.aggregate.marts import refresh_marts
    from tests.support.marts import delivery, event, subscriber

    now = datetime.now(UTC)
    for sid in range(1, 7):
        subscriber(con, sid, f"s{sid}@example.com")
        for n in range(5 if sid != 4 else 4):  # 4 received only four campaigns
            days = 200 if sid == 6 and n < 2 else 10 + 30 * n  # 6: two of them longer ago than 180 days
            delivery(con, f"c{n}", sid, "delivered", sent_at=now - timedelta(days=days))
    event(con, "o2", "c0", 2, "open", now - timedelta(days=9))  # 2 opened lately
    event(con, "o3", "c0", 3, "open", now - timedelta(days=9), machine=True)  # 3: only a privacy proxy did
    event(con, "k5", None, 5, "click", now - timedelta(days=200))  # 5 clicked, long ago
    refresh_marts(con, False)
    assert target(con, include=["sunset_180d"]) == {1, 3, 5}
    assert target(con, include=["engaged_90d"]) == {2}
    assert target(con, where="subscriber_id IN (SELECT subscriber_id FROM subscriber_engagement "
                             "WHERE campaigns_received_90d >= 3)") == {1, 2, 3, 4, 5}
