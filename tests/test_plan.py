"""Campaign files and planning: a frozen audience, stable chunks, guarded conditions."""

import json

import polars as pl
import pytest

from mailflow import SAMPLES_DIR
from mailflow.errors import MailflowError
from tasks.campaign import campaign_id_for, load_campaign
from tasks.ingest import IngestOptions, ingest_file
from tasks.plan import plan, read_manifest, with_condition
from tests.conftest import write_csv

CAMPAIGN = """name: {name}
from: "News <news@example.com>"
template: newsletter
subject: "Hi {{{{ subscriber.first_name }}}}"
{extra}
"""


def campaign(tmp_path, name="Spring Sale!", extra=""):
    path = tmp_path / f"{campaign_id_for(name) or 'x'}.yaml"
    path.write_text(CAMPAIGN.format(name=name, extra=extra))
    return load_campaign(path)


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
    assert (result.audience_size, result.chunk_count, result.already_planned) == (60, 3, False)
    manifest = read_manifest(home, spec.campaign_id)
    frames = [pl.read_parquet(home / "campaigns" / spec.campaign_id / "chunks" / n) for n in manifest["chunks"]]
    assert [f.height for f in frames] == [25, 25, 10]
    assert set(pl.concat(frames)["email"].str.ends_with("@example.com")) == {True}
    assert "other@example.com" not in pl.concat(frames)["email"].to_list()
    assert json.loads(pl.concat(frames)["attributes"][0])["country"] == "JP"


def test_replanning_is_idempotent_and_a_changed_file_is_refused(people, home, tmp_path):
    spec = campaign(tmp_path, extra="lists: [news]")
    plan(people, home, spec, 50)
    people.execute("INSERT INTO subscribers (email, email_original) VALUES ('late@example.com', 'late@example.com')")
    again = plan(people, home, spec, 50)
    assert again.already_planned and again.audience_size == 120
    changed = campaign(tmp_path, extra="lists: [other]")
    with pytest.raises(MailflowError, match="already planned with a different file"):
        plan(people, home, changed, 50)


def test_suppressed_and_inactive_subscribers_are_left_out(people, home, tmp_path):
    people.execute("INSERT INTO suppressions (email, cause) VALUES ('p1@example.com', 'hard_bounce')")
    people.execute("UPDATE subscribers SET status = 'unsubscribed' WHERE email = 'p2@example.com'")
    result = plan(people, home, campaign(tmp_path, extra="lists: [news]"), 50)
    assert result.audience_size == 118


@pytest.mark.parametrize(
    "where,message",
    [
        ("TRUE; DROP TABLE subscribers", "one condition"),
        ("TRUE -- everything", "one condition"),
        ("TRUE) OR (TRUE", "unbalanced"),
        ("nosuchcolumn = 1", "'where'"),
    ],
)
def test_where_conditions_are_guarded(people, home, tmp_path, where, message):
    spec = campaign(tmp_path, extra=f"where: {json.dumps(where)}")
    with pytest.raises(MailflowError, match=message):
        plan(people, home, spec, 50)
    assert people.execute("SELECT count(*) FROM subscribers").fetchone()[0] == 121
    assert people.execute("SELECT count(*) FROM campaigns").fetchone()[0] == 0


def test_with_condition_only_fills_the_slot():
    assert with_condition("WHERE (/*where*/ TRUE)", "a = 1") == "WHERE ((a = 1) AND TRUE)"
    assert with_condition("WHERE (/*where*/ TRUE)", None) == "WHERE (/*where*/ TRUE)"


def test_unplanned_campaign_is_a_clear_error(home):
    with pytest.raises(MailflowError, match="mailflow plan"):
        read_manifest(home, "nope")


def test_block_rules_added_after_ingest_keep_addresses_out_of_plans(people, home, tmp_path):
    from tasks.rules import add_rule

    add_rule(people, "re:^p1[0-9]@", "block")      # p10..p19
    add_rule(people, "p15@example.com", "allow")
    result = plan(people, home, campaign(tmp_path, extra="lists: [news]"), 50)
    assert result.audience_size == 120 - 10 + 1
