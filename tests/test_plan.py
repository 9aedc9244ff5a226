"""Campaign files and planning: a frozen audience, stable chunks, guarded conditions."""

import itertools
import json
import re

import duckdb
import polars as pl
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mailflow import SAMPLES_DIR
from mailflow.errors import MailflowError
from mailflow.tasks.files.lifecycle import record_transition
from mailflow.tasks.files.manifest import read_manifest
from mailflow.tasks.ingest.ingest import IngestOptions, ingest_file
from mailflow.tasks.plan.audience import plan
from mailflow.tasks.plan.campaign import campaign_id_for, load_campaign
from tests.support.inputs import write_csv
from tests.support.planning import campaign


@pytest.fixture
def people(con, tmp_path):
    rows = "".join(f"p{i}@example.com,P{i},{'JP' if i % 2 else 'US'}\n" for i in range(120))
    ingest_file(con, write_csv(tmp_path / "p.csv", "email,first_name,country\n" + rows), IngestOptions(list_name="news"))
    ingest_file(con, write_csv(tmp_path / "o.csv", "email,first_name,country\nother@example.com,O,JP\n"), IngestOptions(list_name="other"))
    return con


def test_sample_campaign_loads():
    spec = load_campaign(SAMPLES_DIR / "campaign.yaml")
    assert spec.campaign_id == "demo-newsletter" and spec.lists == ("newsletter",)


def test_campaign_id_is_a_slug():
    assert campaign_id_for("Spring Sale! 2026") == "spring-sale-2026"


@pytest.mark.parametrize(
    "text,message",
    [
        ("name: x\n", "'from' is required"),
        ("- a list\n", "mapping"),
        ("name: x\nfrom: nobody\ntemplate: t\nsubject: s\n", "'from' must be one address"),
        ("name: x\nfrom: a@b.c\ntemplate: ../etc\nsubject: s\n", "'template'"),
        ("name: x\nfrom: a@b.c\ntemplate: t\nsubject: \"a\\r\\nBcc: x@y.z\"\n", "line break"),
        ("name: x\nfrom: a@b.c\ntemplate: t\nsubject: s\ncolour: red\n", "unknown field 'colour'"),
        ("name: [x\n", "not valid YAML"),
    ],
)
def test_bad_campaign_files_name_the_field(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(MailflowError, match=message) as err:
        load_campaign(path)
    assert str(path) in str(err.value)


def test_plan_freezes_audience_into_chunks(people, home, tmp_path):
    spec = campaign(tmp_path, extra="lists: [news]\nwhere: \"attributes->>'country' = 'JP'\"")
    result = plan(people, home, spec, chunk_size=25)
    assert (result.audience_size, result.chunk_count, result.status, result.replanned) == (60, 3, "planned", False)
    manifest = read_manifest(home, spec.campaign_id)
    frames = [pl.read_parquet(home / "campaigns" / spec.campaign_id / c["file"]) for c in manifest["chunks"]]
    assert [f.height for f in frames] == [20, 20, 20]  # ceil(60 / 25) chunks, evenly filled
    assert set(pl.concat(frames)["email"].str.ends_with("@example.com")) == {True}
    assert "other@example.com" not in pl.concat(frames)["email"].to_list()
    assert json.loads(pl.concat(frames)["attributes"][0])["country"] == "JP"


def test_replanning_an_unsent_campaign_recomputes_it_and_swaps_its_chunks(people, home, tmp_path):
    spec = campaign(tmp_path, extra="lists: [news]")
    first = plan(people, home, spec, 50)
    old = read_manifest(home, spec.campaign_id)
    changed = campaign(tmp_path, extra="lists: [other]")
    again = plan(people, home, changed, 50)
    assert (first.audience_size, again.audience_size, again.replanned) == (120, 1, True)
    new = read_manifest(home, spec.campaign_id)
    assert new["plan_id"] != old["plan_id"] and new["spec"]["lists"] == ["other"]
    folder = home / "campaigns" / spec.campaign_id
    assert sorted(p.name for p in folder.glob("chunks*")) == [f"chunks-{new['plan_id']}"]  # the old folder is gone
    assert [pl.read_parquet(folder / c["file"])["email"].to_list() for c in new["chunks"]] == [["other@example.com"]]
    assert people.execute("SELECT count(*) FROM campaign_recipients").fetchone()[0] == 1


def test_a_campaign_that_started_sending_is_not_replanned(people, home, tmp_path):
    spec = campaign(tmp_path, extra="lists: [news]")
    plan(people, home, spec, 50)
    ledger = home / "ledger" / spec.campaign_id / "chunk-00000.ndjson"
    ledger.parent.mkdir(parents=True)
    ledger.write_text("{}\n")
    before = read_manifest(home, spec.campaign_id)
    kept = plan(people, home, spec, 50)  # the same file: nothing to do, and no error (a rerun of the demo)
    assert kept.already_planned and kept.audience_size == 120
    with pytest.raises(MailflowError, match=r"started sending .*mailflow campaigns cancel spring-sale.* new name"):
        plan(people, home, campaign(tmp_path, extra="lists: [other]"), 50)
    assert read_manifest(home, spec.campaign_id) == before
    record_transition(home, spec.campaign_id, "paused", "test")  # the files say what the warehouse has not loaded
    ledger.unlink()
    with pytest.raises(MailflowError, match="status paused"):
        plan(people, home, campaign(tmp_path, extra="lists: [other]"), 50)


def test_a_campaign_kept_as_planned_says_the_state_its_files_record(people, home, tmp_path):
    spec = campaign(tmp_path, extra="lists: [news]")
    plan(people, home, spec, 50)
    record_transition(home, spec.campaign_id, "sending", "test")
    record_transition(home, spec.campaign_id, "paused", "test")  # the warehouse still says planned
    kept = plan(people, home, spec, 50)
    assert (kept.already_planned, kept.status) == (True, "paused")


@pytest.mark.parametrize("sent", [False, True])
def test_a_cancelled_campaign_is_never_planned_again_even_from_the_same_file(people, home, tmp_path, sent):
    spec = campaign(tmp_path, extra="lists: [news]")
    plan(people, home, spec, 50)
    if sent:
        ledger = home / "ledger" / spec.campaign_id / "chunk-00000.ndjson"
        ledger.parent.mkdir(parents=True)
        ledger.write_text("{}\n")
    record_transition(home, spec.campaign_id, "cancelled", "test")
    before = read_manifest(home, spec.campaign_id)
    with pytest.raises(MailflowError, match=r"^campaign 'spring-sale' is cancelled: plan the file under a new name$"):
        plan(people, home, spec, 50)
    assert read_manifest(home, spec.campaign_id) == before


def test_suppressed_and_inactive_subscribers_are_left_out(people, home, tmp_path):
    people.execute("INSERT INTO suppressions (email, cause) VALUES ('p1@example.com', 'hard_bounce')")
    people.execute("UPDATE subscribers SET status = 'unsubscribed' WHERE email = 'p2@example.com'")
    result = plan(people, home, campaign(tmp_path, extra="lists: [news]"), 50)
    assert result.audience_size == 118


@pytest.mark.parametrize(
    "where,message",
    [
        ("TRUE; DROP TABLE subscribers", "single condition"),
        ("TRUE) OR (TRUE", "syntax error"),
        ("'(' = '(' )) OR TRUE OR ((')' = ')'", "syntax error"),  # parentheses inside literals
        ("TRUE ORDER BY 1", "single condition"),
        ("TRUE UNION SELECT subscriber_id FROM subscribers", "single condition"),
        ("subscriber_id = $1", "single condition"),
        ("read_csv('/etc/passwd') IS NOT NULL", "'read_csv' is not allowed"),
        ("(SELECT count(*) FROM read_text('/etc/passwd')) > 0", "'read_text' are not allowed"),
        ("EXISTS (SELECT 1 FROM glob('/etc/*'))", "'glob' are not allowed"),
        ("subscriber_id IN (SELECT * FROM query('SELECT subscriber_id FROM subscribers'))", "'query' are not allowed"),
        ("current_setting('memory_limit') = '2GB'", "'current_setting' is not allowed"),
        ("EXISTS (SELECT 1 FROM address_rules)", "not 'address_rules'"),
        ("EXISTS (SELECT 1 FROM engagement_by_variant)", "not 'engagement_by_variant'"),  # only subscriber_engagement
        ("EXISTS (SELECT 1 FROM information_schema.tables)", "may read only the tables"),
        ("EXISTS (SELECT 1 FROM other.main.subscribers)", "may read only the tables"),
        ("EXISTS (WITH x AS (SELECT 1) SELECT * FROM x)", "WITH"),
        ("EXISTS (FROM (SUMMARIZE subscribers))", "not allowed"),
    ],
)
def test_a_condition_that_is_not_one_expression_over_the_warehouse_is_refused_at_load(tmp_path, where, message):
    with pytest.raises(MailflowError, match=re.escape(message)) as refused:
        campaign(tmp_path, extra=f"where: {json.dumps(where)}")
    assert "field 'where'" in str(refused.value) and "\n" not in str(refused.value)


@pytest.mark.parametrize("where", ["nosuchcolumn = 1", "EXISTS (SELECT 1 FROM events WHERE nosuch = 1)"])
def test_a_condition_that_does_not_bind_fails_at_plan_and_plans_nothing(people, home, tmp_path, where):
    spec = campaign(tmp_path, extra=f"where: {json.dumps(where)}")
    with pytest.raises(MailflowError, match="campaign field 'where'"):
        plan(people, home, spec, 50)
    assert people.execute("SELECT count(*) FROM subscribers").fetchone()[0] == 121
    assert people.execute("SELECT count(*) FROM campaigns").fetchone()[0] == 0


def test_a_condition_may_read_list_memberships_and_delivery_history(people, home, tmp_path):
    where = "subscriber_id IN (SELECT m.subscriber_id FROM list_memberships AS m JOIN lists AS l USING (list_id) " \
            "WHERE l.name = 'other') OR NOT EXISTS (SELECT 1 FROM deliveries AS d WHERE d.subscriber_id = subscribers.subscriber_id)"
    assert plan(people, home, campaign(tmp_path, extra=f"where: {json.dumps(where)}"), 50).audience_size == 121


def test_no_condition_widens_the_audience_past_the_mandatory_filters(people, home, tmp_path):
    from mailflow.tasks.core.rules import add_rule

    people.execute("UPDATE subscribers SET status = 'unsubscribed' WHERE email = 'p2@example.com'")
    people.execute("INSERT INTO suppressions (email, cause) VALUES ('p3@example.com', 'hard_bounce')")
    add_rule(people, "p4@example.com", "block")
    where = "TRUE OR status = 'unsubscribed' OR email IN (SELECT email FROM suppressions)"
    result = plan(people, home, campaign(tmp_path, extra=f"lists: [news]\nwhere: {json.dumps(where)}"), 50)
    assert result.audience_size == 120 - 3
    assert people.execute("SELECT count(*) FROM campaign_recipients JOIN subscribers USING (subscriber_id) "
                          "WHERE email IN ('p2@example.com', 'p3@example.com', 'p4@example.com', 'other@example.com')"
                          ).fetchone()[0] == 0


def test_a_condition_cannot_read_files_even_through_a_view(people, home, tmp_path):
    """External access is off while the condition runs: the second wall behind the parser's check."""
    from mailflow.tasks.plan.condition import matching

    matching(people, "TRUE")
    with pytest.raises(duckdb.PermissionException):
        people.execute("SELECT * FROM read_text('/etc/hostname')")


def test_unplanned_campaign_is_a_clear_error(home):
    with pytest.raises(MailflowError, match="mailflow plan"):
        read_manifest(home, "nope")


def test_block_rules_added_after_ingest_keep_addresses_out_of_plans(people, home, tmp_path):
    from mailflow.tasks.core.rules import add_rule

    add_rule(people, "re:^p1[0-9]@", "block")      # p10..p19
    add_rule(people, "p15@example.com", "allow")
    result = plan(people, home, campaign(tmp_path, extra="lists: [news]"), 50)
    assert result.audience_size == 120 - 10 + 1


FRAGMENTS = [
    "(", ")", "'('", "')'", "'", '"', "TRUE", "FALSE", "OR", "AND", "NOT", "OR TRUE", ";", "--", "/*", "*/",
    "status = 'unsubscribed'", "status <> 'active'", "email IN (SELECT email FROM suppressions)",
    "UNION SELECT subscriber_id FROM subscribers", "subscriber_id > 3", "attributes->>'country' = 'JP'",
    "read_csv('/etc/passwd')", "(SELECT subscriber_id FROM read_text('/etc/hostname'))", "query('SELECT 1')",
    "CAST('x' AS INTEGER) = 1", "1/0 = 1", "$$", "E'\\''", "ORDER BY 1", "LIMIT 1", "subscriber_id IN (SELECT 1)",
    "EXISTS (SELECT 1 FROM list_memberships)", "\n", "WHERE", ") OR (",
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fragments=st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=10), noise=st.text(max_size=8))
@example(fragments=["'(' = '(' )) OR TRUE OR ((')' = ')'"], noise="")
def test_a_planned_audience_is_always_within_what_the_lists_and_suppressions_allow(people, home, tmp_path, fragments, noise):
    people.execute("UPDATE subscribers SET status = 'unsubscribed' WHERE email = 'p2@example.com'")
    people.execute("INSERT INTO suppressions (email, cause) SELECT 'p3@example.com', 'hard_bounce' "
                   "WHERE NOT EXISTS (SELECT 1 FROM suppressions)")
    allowed = {r[0] for r in people.execute(
        "SELECT subscriber_id FROM subscribers JOIN list_memberships USING (subscriber_id) JOIN lists USING (list_id) "
        "WHERE lists.name = 'news' AND status = 'active' AND email <> 'p3@example.com'").fetchall()}
    where = " ".join(fragments) + noise
    name = f"h{next(_names)}"
    try:
        spec = campaign(tmp_path, name=name, extra=f"lists: [news]\nwhere: {json.dumps(where)}")
        plan(people, home, spec, 50)
    except MailflowError:
        return
    planned = {r[0] for r in people.execute(
        "SELECT subscriber_id FROM campaign_recipients WHERE campaign_id = $c", {"c": spec.campaign_id}).fetchall()}
    assert planned <= allowed


_names = itertools.count()


def test_every_exclusion_is_recorded_with_the_first_rule_that_applies(con, home, tmp_path):
    from mailflow.tasks.core.rules import add_rule
    from mailflow.tasks.plan import audience
    from mailflow.tasks.plan.exclusions import Limits
    from tests.support.planning import add_subscribers, exclusions

    add_subscribers(con, [f"ok{i}@example.com" for i in range(5)] + ["unsub@example.com", "supp@example.com",
                    "soft@example.com", "softsupp@example.com", "blocked@bad.example", "re1@example.com",
                    "allowed@bad.example", "both@example.com", "excluded@example.com", "busy@example.com"])
    con.execute("UPDATE subscribers SET status = 'unsubscribed' WHERE email IN ('unsub@example.com', 'both@example.com')")
    con.execute("INSERT INTO suppressions (email, cause) VALUES ('supp@example.com', 'complaint'), "
                "('both@example.com', 'unsubscribe'), ('softsupp@example.com', 'soft_bounces')")
    ids = dict(con.execute("SELECT email, subscriber_id FROM subscribers").fetchall())
    for k in range(3):  # three soft bounces within the window, not yet folded into suppressions
        con.execute("INSERT INTO deliveries (campaign_id, subscriber_id, variant, chunk_id, status, attempts, sent_at, "
                    "kind) VALUES ($c, $s, 'A', 0, 'bounced', 1, now() - INTERVAL 2 DAY, 'soft')",
                    {"c": f"old{k}", "s": ids["soft@example.com"]})
    add_rule(con, "*@bad.example", "block")
    add_rule(con, "allowed@bad.example", "allow")
    add_rule(con, "re:^re[0-9]@", "block")
    for k in range(2):  # a recipient of two campaigns planned this week
        con.execute("INSERT INTO campaigns (campaign_id, name, status, spec, audience_size, chunk_count, planned_at) "
                    "VALUES ($c, $c, 'sent', '{}', 1, 1, now() - INTERVAL 1 DAY)", {"c": f"week{k}"})
        con.execute("INSERT INTO campaign_recipients VALUES ($c, $s, 'A', 0)", {"c": f"week{k}", "s": ids["busy@example.com"]})
    con.execute("INSERT INTO campaign_recipients VALUES ('week0', $s, 'holdout', NULL)", {"s": ids["ok0@example.com"]})
    con.execute("INSERT INTO campaign_recipients VALUES ('week1', $s, 'A', 0)", {"s": ids["ok0@example.com"]})

    # segment.exclude: the list vip takes excluded@ out (recorded as exclude:vip), and a segment
    # of ok4 takes nobody already excluded by an earlier rule
    con.execute("INSERT INTO lists (name) VALUES ('vip')")
    con.execute("INSERT INTO list_memberships (list_id, subscriber_id) SELECT list_id, $s FROM lists WHERE name = 'vip'",
                {"s": ids["excluded@example.com"]})
    spec = campaign(tmp_path, extra="segment: {exclude: [vip]}")
    result = plan(con, home, spec, 50, audience.PlanOptions(limits=Limits(frequency_cap=2, frequency_days=7)))
    assert exclusions(con, spec.campaign_id) == {
        "unsub@example.com": "status:unsubscribed", "both@example.com": "status:unsubscribed",
        "supp@example.com": "suppressed:complaint", "softsupp@example.com": "soft_bounces",
        "soft@example.com": "soft_bounces", "blocked@bad.example": "rule:*@bad.example",
        "re1@example.com": "rule:re:^re[0-9]@", "excluded@example.com": "exclude:vip", "busy@example.com": "frequency_cap",
    }
    assert result.matched == 15 and result.audience_size == 6  # ok0..ok4 (a holdout is not a mailing) and allowed@
    assert result.excluded == {"soft_bounces": 2, "status:unsubscribed": 2, "exclude:vip": 1, "frequency_cap": 1,
                               "rule:*@bad.example": 1, "rule:re:^re[0-9]@": 1, "suppressed:complaint": 1}
    row = con.execute("SELECT matched, excluded, planned, audience_size FROM campaigns WHERE campaign_id = $c",
                      {"c": spec.campaign_id}).fetchone()
    assert row == (15, 9, 6, 6)


def test_the_frequency_cap_is_a_setting_a_campaign_may_override(con, home, tmp_path):
    from mailflow.tasks.plan.audience import PlanOptions
    from mailflow.tasks.plan.exclusions import Limits
    from tests.support.planning import add_subscribers, exclusions

    add_subscribers(con, ["a@example.com", "b@example.com"])
    plan(con, home, campaign(tmp_path, name="first"), 50)
    limits = PlanOptions(limits=Limits(frequency_cap=1, frequency_days=7))
    assert plan(con, home, campaign(tmp_path, name="second"), 50, limits).audience_size == 0
    assert set(exclusions(con, "second").values()) == {"frequency_cap"}
    assert plan(con, home, campaign(tmp_path, name="second", extra="frequency_cap: false"), 50, limits).audience_size == 2
    over = "frequency_cap: {campaigns: 3, days: 7}"
    assert plan(con, home, campaign(tmp_path, name="third", extra=over), 50, limits).audience_size == 2
    assert plan(con, home, campaign(tmp_path, name="fourth"), 50).audience_size == 2  # the default: no cap
    con.execute("UPDATE campaigns SET status = 'cancelled' WHERE campaign_id <> 'fifth'")
    assert plan(con, home, campaign(tmp_path, name="fifth"), 50, limits).audience_size == 2  # cancelled ones do not count


def test_a_subscriber_who_chose_weekly_or_monthly_mail_is_left_out_within_that_time_of_the_last_campaign(con, home,
                                                                                                            tmp_path):
    from tests.support.planning import add_subscribers, exclusions

    people = {"weekly3": ("weekly", 3), "weekly10": ("weekly", 10), "monthly20": ("monthly", 20),
              "monthly40": ("monthly", 40), "all1": ("all", 1), "unset1": (None, 1), "weeklyheld": ("weekly", 2)}
    add_subscribers(con, [f"{name}@example.com" for name in people])
    ids = dict(con.execute("SELECT email, subscriber_id FROM subscribers").fetchall())
    for name, (frequency, days) in people.items():
        if frequency:  # as the aggregate stage records the preference centre's choice: the event and the attribute
            con.execute("UPDATE subscribers SET attributes = json_object('frequency', $f) WHERE subscriber_id = $s",
                        {"f": frequency, "s": ids[f"{name}@example.com"]})
            con.execute("INSERT INTO events (event_id, type, subscriber_id, occurred_at, data) "
                        "VALUES ($e, 'preferences', $s, now(), json_object('frequency', $f))",
                        {"e": f"pref-{name}", "s": ids[f"{name}@example.com"], "f": frequency})
        con.execute("INSERT INTO campaigns (campaign_id, name, status, spec, audience_size, chunk_count, planned_at) "
                    "VALUES ($c, $c, 'sent', '{}', 1, 1, now() - to_days($d))", {"c": f"before-{name}", "d": days})
        con.execute("INSERT INTO campaign_recipients VALUES ($c, $s, $v, 0)", {
            "c": f"before-{name}", "s": ids[f"{name}@example.com"], "v": "holdout" if name == "weeklyheld" else "A"})
    spec = campaign(tmp_path, name="now")
    result = plan(con, home, spec, 50)
    assert exclusions(con, spec.campaign_id) == {"weekly3@example.com": "frequency:weekly",
                                                 "monthly20@example.com": "frequency:monthly"}
    assert result.audience_size == 5  # a holdout was mailed nothing; "all" and no choice are not limited


def test_an_empty_audience_is_a_warning_with_its_reason(con, home, tmp_path):
    from tests.support.planning import add_subscribers

    nobody = plan(con, home, campaign(tmp_path), 50)
    assert nobody.audience_size == 0 and "no subscriber matches" in nobody.warnings[0]
    add_subscribers(con, ["a@example.com", "b@example.com"], status="unsubscribed")
    excluded = plan(con, home, campaign(tmp_path), 50)
    assert excluded.warnings == ["nobody to mail: all 2 matched subscribers were excluded, by status:unsubscribed (2)"]
    add_subscribers(con, ["c@example.com"])
    assert plan(con, home, campaign(tmp_path), 50).warnings == []


def test_plan_address_rules_agree_with_the_warehouse_macro(con, home, tmp_path):
    from mailflow.tasks.core.rules import add_rule
    from tests.support.planning import add_subscribers, exclusions

    emails = [f"{a}@{d}" for a in ("x", "re7", "spam.me", "ok") for d in ("a.example", "b.example", "sub.a.example")]
    add_subscribers(con, emails)
    for pattern, action in [("*@a.example", "block"), ("re:^re[0-9]", "block"), ("re:spam", "block"),
                            ("x@b.example", "block"), ("re7@a.example", "allow"), ("re:^ok@sub", "block"),
                            ("*@sub.a.example", "allow")]:
        add_rule(con, pattern, action)
    plan(con, home, campaign(tmp_path), 50)
    macro = dict(con.execute("SELECT email, 'rule:' || blocked_by_rule(email) FROM subscribers "
                             "WHERE blocked_by_rule(email) IS NOT NULL").fetchall())
    assert exclusions(con, "spring-sale") == macro and len(macro) == 6


def test_a_missing_or_broken_template_fails_the_plan_naming_it_and_writes_nothing(con, home, tmp_path):
    from mailflow.settings import load_settings
    from mailflow.tasks.plan.audience import PlanOptions
    from mailflow.tasks.plan.preview import template_check
    from tests.support.planning import add_subscribers

    add_subscribers(con, ["a@example.com"])
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "broken.html.j2").write_text("<p>one</p>\n<p>two</p>\n<p>{{ subscriber.first_name }</p>\n")
    (templates / "strict.txt.j2").write_text("Hello\n\n{{ subscriber.plan.upper() }}\n")
    settings = load_settings(overrides={"home": str(home), "templates_dir": str(templates)}, environ={})
    options = PlanOptions.from_settings(settings, check=template_check(settings))
    for extra, message in [
        ("variants: [{name: A}, {name: B, template: nosuch}]", "variant 'B': template 'nosuch': neither"),
        ("variants: [{name: A}, {name: B, template: broken}]", "broken.html.j2 line 3: TemplateSyntaxError"),
        ("variants: [{name: A, template: strict}, {name: B}]", "strict.txt.j2 line 3: UndefinedError"),
    ]:
        with pytest.raises(MailflowError, match=re.escape(message)):
            plan(con, home, campaign(tmp_path, extra=extra), 50, options)
        assert con.execute("SELECT count(*) FROM campaigns").fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM campaign_recipients").fetchone()[0] == 0
        assert not (home / "campaigns" / "spring-sale").exists() or \
            not any((home / "campaigns" / "spring-sale").iterdir())
    assert plan(con, home, campaign(tmp_path), 50, options).audience_size == 1  # no secret set: a throwaway key
