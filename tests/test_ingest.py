"""Ingest: every row kept or quarantined with a reason, nothing lost or doubled, bad files refused whole."""

import gzip
import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mailflow import SAMPLES_DIR
from mailflow.errors import MailflowError
from mailflow.tasks.core.checks import failing_checks
from mailflow.tasks.core.rules import add_rule
from mailflow.tasks.ingest.bounds import MAX_COLUMNS, MAX_RECORD_BYTES, RAW_LIMIT
from mailflow.tasks.ingest.ingest import IngestOptions, ingest_file, validation_markdown
from mailflow.tasks.ingest.normalise import Mapping_
from mailflow.tasks.ingest.readers import BATCH_BYTES
from mailflow.tasks.ingest.screen import ScreenOptions
from tests.support.inputs import HEADER, ROW_CASES, write_csv


def balanced(result):
    return result.rows_read == result.accepted + result.updated + result.unchanged + result.quarantined


def quarantine(con):
    return con.execute("SELECT line, rule, reason, raw FROM quarantine ORDER BY line").fetchall()


def emails(con):
    return sorted(r[0] for r in con.execute("SELECT email FROM subscribers").fetchall())


def ingest_bytes(con, tmp_path, data: bytes, name="in.csv", **options):
    path = tmp_path / name
    path.write_bytes(data)
    return ingest_file(con, path, IngestOptions(**options), tmp_path / "home")


# -- the whole file -----------------------------------------------------------------------------

def test_sample_file_keeps_every_row(con, tmp_path):
    result = ingest_file(con, SAMPLES_DIR / "subscribers.csv", IngestOptions(list_name="newsletter"), tmp_path)
    assert balanced(result) and result.rows_read == 3003
    assert result.quarantined > 0 and result.accepted > 2000
    assert con.execute("SELECT count(*) FROM subscribers").fetchone()[0] == result.accepted
    assert con.execute("SELECT count(*) FROM quarantine").fetchone()[0] == result.quarantined
    members = con.execute("SELECT count(*) FROM list_memberships JOIN lists USING (list_id) WHERE name='newsletter'")
    assert members.fetchone()[0] == result.accepted
    assert failing_checks(con) == []


def test_validation_run_is_recorded_with_its_gx_result(con, tmp_path):
    result = ingest_file(con, SAMPLES_DIR / "subscribers.csv", IngestOptions(), tmp_path)
    run = con.execute("SELECT success, evaluated, rows_checked, result_path FROM validation_runs").fetchone()
    assert run[0] is False and run[1] == 6 and run[2] == result.rows_read
    stored = json.loads(open(run[3]).read())
    regex = [r for r in stored["results"] if r["expectation"] == "expect_column_values_to_match_regex"][0]
    assert regex["unexpected_count"] > 0 and regex["unexpected_lines_sample"]


def test_reingest_of_same_file_changes_nothing(con, tmp_path):
    first = ingest_file(con, SAMPLES_DIR / "subscribers.csv", IngestOptions(), tmp_path)
    before = con.execute("SELECT count(*), max(updated_at) FROM subscribers").fetchone()
    second = ingest_file(con, SAMPLES_DIR / "subscribers.csv", IngestOptions(), tmp_path)
    assert second.already_ingested and second.batch_id == first.batch_id and balanced(second)
    assert con.execute("SELECT count(*), max(updated_at) FROM subscribers").fetchone() == before
    assert con.execute("SELECT count(*) FROM quarantine").fetchone()[0] == first.quarantined


def test_changed_rows_update_and_unchanged_rows_are_counted(con, tmp_path):
    ingest_file(con, write_csv(tmp_path / "a.csv", HEADER + "a@example.com,Ann,Lee,JP\nb@example.com,Bo,Kim,US\n"))
    result = ingest_file(con, write_csv(tmp_path / "b.csv", HEADER + "a@example.com,Ann,Lee,JP\nb@example.com,Bob,Kim,US\nc@example.com,,,\n"))
    assert (result.accepted, result.updated, result.unchanged, result.quarantined) == (1, 1, 1, 0)
    assert con.execute("SELECT first_name FROM subscribers WHERE email='b@example.com'").fetchone()[0] == "Bob"


def test_a_file_that_fails_midway_writes_nothing(con, tmp_path):
    good = "".join(f"u{i}@example.com,N{i},L,JP\n" for i in range(2000)).encode()
    data = HEADER.encode() + good + "".join(f"l{i}@example.com,Jos\xe9,L,FR\n" for i in range(500)).encode("latin-1")
    with pytest.raises(MailflowError, match="--encoding"):
        ingest_bytes(con, tmp_path, data, batch_bytes=4096)
    assert con.execute("SELECT count(*) FROM subscribers").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM ingest_batches").fetchone()[0] == 0


def test_batches_give_the_same_result_as_one_pass(con, tmp_path, home):
    from mailflow.tasks.core.warehouse import connect

    ingest_file(con, SAMPLES_DIR / "subscribers.csv", IngestOptions(batch_bytes=8192), tmp_path)
    with connect(tmp_path / "other.duckdb") as other:
        ingest_file(other, SAMPLES_DIR / "subscribers.csv", IngestOptions(), tmp_path)
        assert emails(con) == emails(other)
        assert quarantine(con) == quarantine(other)


# -- status and consent -------------------------------------------------------------------------

CONSENT = "email,status,opted_in_at,consent_source,double_opt_in\n"


def test_import_can_unsubscribe_but_never_resubscribe_without_consent(con, tmp_path):
    ingest_file(con, write_csv(tmp_path / "a.csv", CONSENT + "a@example.com,,2024-01-01,form,confirmed\n"))
    ingest_file(con, write_csv(tmp_path / "b.csv", CONSENT + "a@example.com,unsubscribed,,,\n"))
    assert con.execute("SELECT status, consent_source FROM subscribers").fetchone() == ("unsubscribed", "form")
    result = ingest_file(con, write_csv(tmp_path / "c.csv", CONSENT + "a@example.com,active,2020-01-01,crm,\n"))
    assert result.resubscribes_refused == 1
    assert con.execute("SELECT status FROM subscribers").fetchone()[0] == "unsubscribed"
    stale = ingest_file(con, write_csv(tmp_path / "d.csv", CONSENT + "a@example.com,active,2020-01-02,crm,\n"),
                        IngestOptions(allow_resubscribe=True))
    assert stale.resubscribes_refused == 1, "consent older than the unsubscribe does not count"
    later = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    fresh = f"a@example.com,active,{later},crm,confirmed\n"
    ingest_file(con, write_csv(tmp_path / "e.csv", CONSENT + fresh), IngestOptions(allow_resubscribe=True))
    assert con.execute("SELECT status FROM subscribers").fetchone()[0] == "active"


# -- opt-outs always win ------------------------------------------------------------------------

OPT_OUT = "email,first_name,status\n"


def suppressed(con):
    return dict(con.execute("SELECT email, cause FROM suppressions").fetchall())


def statuses(con):
    return dict(con.execute("SELECT email, status FROM subscribers").fetchall())


def audience(con, home, name):
    """Plan a campaign to everyone and return its recipients' addresses, and the send-time suppression check."""
    from mailflow.tasks.files.suppress import SuppressionCheck
    from mailflow.tasks.plan.audience import plan
    from mailflow.tasks.plan.campaign import campaign_id_for
    from tests.support.campaign import SPEC

    spec = replace(SPEC, name=name, campaign_id=campaign_id_for(name))
    plan(con, home, spec, 50)
    rows = con.execute("SELECT email FROM campaign_recipients JOIN subscribers USING (subscriber_id) "
                       "WHERE campaign_id = $c", {"c": spec.campaign_id}).fetchall()
    return {email for (email,) in rows}, SuppressionCheck(home)


def test_an_unsubscribe_with_a_bad_address_is_quarantined_and_still_suppressed(con, tmp_path, home):
    ingest_file(con, write_csv(tmp_path / "a.csv", OPT_OUT + "ann@example.com,Ann,\nzed@example.com,Zed,\n"))
    text = (OPT_OUT + "  NOT-AN-ADDRESS ,X,unsubscribed\n" "Bad@Example..COM,B,Opted-Out\n"
            "ann@example.com\x07,Ann,unsubscribed\n" "worse@@example.com,W,active\n")
    result = ingest_bytes(con, tmp_path, text.encode(), name="b.csv")
    assert result.quarantined == 4 and result.opt_outs == 3 and balanced(result)
    assert suppressed(con) == {"not-an-address": "unsubscribe:ingest", "Bad@example..com": "unsubscribe:ingest",
                               "ann@example.com": "unsubscribe:ingest"}, "a plain row with a bad address is not an opt-out"
    reasons = [reason for _, _, reason, _ in quarantine(con)]
    assert [r.endswith("(an opt-out: the address is suppressed)") for r in reasons] == [True, True, True, False]
    assert reasons[2].startswith("control_characters") and statuses(con)["ann@example.com"] == "unsubscribed"
    planned, check = audience(con, home, "After bad unsubscribes")
    assert planned == {"zed@example.com"} and check.cause("ann@example.com") and check.cause("not-an-address")
    assert failing_checks(con) == []


@pytest.mark.integration
def test_an_unsubscribe_failing_check_mx_is_quarantined_and_still_suppressed(con, tmp_path, home):
    from mailflow.tasks.core.dns import make_resolver
    from tests.support.dnsstub import DnsStub

    ingest_file(con, write_csv(tmp_path / "a.csv", OPT_OUT + "a@nullmx.example,A,\nb@example.com,B,\n"))
    write_csv(tmp_path / "b.csv", OPT_OUT + "A@NullMX.example,A,unsubscribed\nb@example.com,B,\n")
    with DnsStub({"example.com": {"MX": ["10 mx.example.com."]}, "nullmx.example": {"MX": ["0 ."]}}) as stub:
        resolver = make_resolver(["127.0.0.1"], port=stub.port, timeout=2)
        result = ingest_file(con, tmp_path / "b.csv", IngestOptions(check_mx=True), home, resolver)
    assert (result.quarantined, result.unchanged, result.opt_outs) == (1, 1, 1)
    assert [(rule, reason.endswith("the address is suppressed)")) for _, rule, reason, _ in quarantine(con)] == [("null_mx", True)]
    assert suppressed(con) == {"A@nullmx.example": "unsubscribe:ingest", "a@nullmx.example": "unsubscribe:ingest"}
    assert statuses(con) == {"a@nullmx.example": "unsubscribed", "b@example.com": "active"}
    planned, check = audience(con, home, "After MX unsubscribe")
    assert planned == {"b@example.com"} and check.cause("a@nullmx.example") == "unsubscribe:ingest"


def test_an_unsubscribe_of_a_blocked_address_outlives_the_block_rule(con, tmp_path, home):
    from mailflow.tasks.core.rules import remove_rule

    ingest_file(con, write_csv(tmp_path / "a.csv", OPT_OUT + "x@spam.example,X,\ny@example.com,Y,\n"))
    add_rule(con, "*@spam.example", "block")
    result = ingest_file(con, write_csv(tmp_path / "b.csv", OPT_OUT + "x@spam.example,X,unsubscribed\n"))
    assert result.quarantined == 1 and result.opt_outs == 1
    assert quarantine(con)[0][2] == "blocked: matches rule *@spam.example (an opt-out: the address is suppressed)"
    remove_rule(con, "*@spam.example")  # the block was the list owner's; the opt-out was the person's
    planned, check = audience(con, home, "After the block is lifted")
    assert planned == {"y@example.com"} and check.cause("x@spam.example") == "unsubscribe:ingest"
    assert statuses(con)["x@spam.example"] == "unsubscribed"


@pytest.mark.parametrize("header", ["Unsubscribed", "Opt-Out", "opted_out", "Do Not Email", "Email Opt Out"])
def test_an_opt_out_column_unsubscribes_every_ticked_spelling(con, tmp_path, home, header):
    ticked = ["yes", "TRUE", "1", "y", "x", " X ", "Yes"]
    plain = ["no", "0", "", "false", "N"]
    rows = [f"t{i}@example.com,{value}" for i, value in enumerate(ticked)]
    rows += [f"p{i}@example.com,{value}" for i, value in enumerate(plain)]
    rows += ["odd@example.com,maybe", "bad address,yes", "known@example.com,yes"]
    ingest_file(con, write_csv(tmp_path / "a.csv", "email\nknown@example.com\n"))
    result = ingest_file(con, write_csv(tmp_path / "b.csv", f"email,{header}\n" + "\n".join(rows) + "\n"))
    opted_out = {f"t{i}@example.com" for i in range(len(ticked))} | {"odd@example.com", "bad address", "known@example.com"}
    assert result.opt_outs == len(opted_out) and set(suppressed(con)) == opted_out
    assert {e for e, s in statuses(con).items() if s == "unsubscribed"} == opted_out - {"bad address", "odd@example.com"}
    assert [(line, rule) for line, rule, _, _ in quarantine(con)] == [(14, "bad_value"), (15, "gx:expect_column_values_to_match_regex(email)")]
    assert con.execute("SELECT count(*) FROM subscribers WHERE attributes <> '{}'").fetchone()[0] == 0, "not an attribute"
    assert "| opted out |" in validation_markdown(result) and f"| {len(opted_out)} |" in validation_markdown(result)
    planned, _ = audience(con, home, f"Column {header}")
    assert planned == {f"p{i}@example.com" for i in range(len(plain))}


def test_two_opt_out_columns_in_one_file_opt_out_when_either_is_ticked(con, tmp_path):
    text = "email,unsubscribed,Do Not Email\na@example.com,no,yes\nb@example.com,,\nc@example.com,x,\n"
    result = ingest_file(con, write_csv(tmp_path / "a.csv", text))
    assert result.opt_outs == 2 and statuses(con) == {"a@example.com": "unsubscribed", "b@example.com": "active",
                                                      "c@example.com": "unsubscribed"}


def test_a_valid_unsubscribe_holds_against_later_plain_rows_until_newer_consent(tmp_path, home):
    from mailflow.tasks.core.warehouse import connect

    def step():  # one connection per step, as each command opens one (a plan closes its connection to files)
        return connect(home / "mailflow.duckdb")

    with step() as con:
        ingest_file(con, write_csv(tmp_path / "a.csv", CONSENT + "a@example.com,,2024-01-01,form,confirmed\n"))
        unsub = ingest_file(con, write_csv(tmp_path / "b.csv", CONSENT + "a@example.com,unsubscribed,,,\n"))
        assert (unsub.updated, unsub.quarantined, unsub.opt_outs) == (1, 0, 1)
        assert suppressed(con) == {"a@example.com": "unsubscribe:ingest"}
        ingest_file(con, write_csv(tmp_path / "c.csv", CONSENT + "a@example.com,,,,\n"))
        ingest_file(con, write_csv(tmp_path / "d.csv", CONSENT + "a@example.com,active,,,\n"), IngestOptions(allow_resubscribe=True))
        assert statuses(con) == {"a@example.com": "unsubscribed"} and "a@example.com" in suppressed(con)
    with step() as con:
        assert audience(con, home, "Still out")[0] == set()
    later = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    with step() as con:
        ingest_file(con, write_csv(tmp_path / "e.csv", CONSENT + f"a@example.com,active,{later},crm,confirmed\n"),
                    IngestOptions(allow_resubscribe=True))
        assert statuses(con) == {"a@example.com": "active"} and suppressed(con) == {}, "newer consent lifts the opt-out"
    with step() as con:
        assert audience(con, home, "Back in")[0] == {"a@example.com"}


def test_an_opt_out_anywhere_in_a_file_wins_over_a_later_plain_row(con, tmp_path):
    result = ingest_file(con, write_csv(tmp_path / "a.csv", OPT_OUT + "c@example.com,C,unsubscribed\nc@example.com,C,\n"))
    assert (result.accepted, result.quarantined, result.opt_outs) == (1, 1, 1)
    assert statuses(con) == {"c@example.com": "unsubscribed"} and "c@example.com" in suppressed(con)
    assert quarantine(con)[0][2] == "duplicate: superseded by line 3 (an opt-out: the address is suppressed)"


def test_a_complaint_is_an_opt_out_and_a_bounce_is_not(con, tmp_path):
    text = OPT_OUT + "c@example.com,C,complained\nbad@x,B,bounced\nk@example.com,K,bounced\n"
    result = ingest_file(con, write_csv(tmp_path / "a.csv", text))
    assert result.opt_outs == 1 and suppressed(con) == {"c@example.com": "complaint:ingest"}
    assert statuses(con) == {"c@example.com": "complained", "k@example.com": "bounced"}


def test_an_opt_out_reaches_the_stored_address_in_another_letter_case(con, tmp_path, home):
    ingest_file(con, write_csv(tmp_path / "a.csv", OPT_OUT + "Ann.Lee@example.com,Ann,\nbo@example.com,Bo,\n"))
    ingest_file(con, write_csv(tmp_path / "b.csv", OPT_OUT + "ANN.LEE@example.com.,Ann,unsubscribed\n"), IngestOptions(check_mx=False))
    assert statuses(con)["Ann.Lee@example.com"] == "unsubscribed"
    assert suppressed(con) == {"ANN.LEE@example.com": "unsubscribe:ingest", "Ann.Lee@example.com": "unsubscribe:ingest"}
    assert audience(con, home, "Case")[0] == {"bo@example.com"}


@pytest.mark.flow
def test_the_ingest_command_applies_opt_outs_from_a_mapped_column_and_counts_them(prefect_harness, tmp_path, capsys):
    from mailflow.cli import main
    from mailflow.tasks.core.warehouse import connect

    home = tmp_path / "cli-home"
    path = write_csv(tmp_path / "crm.csv", "email,Newsletter: leave?\nkeep@example.com,\nleave@example.com,x\n"
                                           "leave@@example.com,yes\n")
    assert main(["--home", str(home), "ingest", "--map", "Newsletter: leave?=opt_out", str(path)]) == 0
    out = capsys.readouterr().out
    assert "3 rows read = 2 new + 0 updated + 0 unchanged + 1 quarantined" in out
    assert "2 addresses opted out: suppressed" in out
    with connect(home / "mailflow.duckdb") as con:
        assert suppressed(con) == {"leave@example.com": "unsubscribe:ingest", "leave@@example.com": "unsubscribe:ingest"}
        assert audience(con, home, "From the CLI")[0] == {"keep@example.com"}


_FULL_GZIP = gzip.compress(HEADER.encode() + b"".join(f"u{i}@example.com,N{i},L,JP\n".encode() for i in range(5000)))
TRUNCATED_GZIP = _FULL_GZIP[: len(_FULL_GZIP) // 2]


# -- bad input: files that cannot be read at all stop with one clear line -------------------------

@pytest.mark.parametrize(
    "name,data,message",
    [
        ("empty.csv", b"", "the file is empty"),
        ("blank.csv", b"\n\n  \n", "the file is empty"),
        ("noemail.csv", b"name,country\nAnn,JP\n", "no email column"),
        ("garbage.csv", bytes(range(256)) * 200, "not valid UTF-8"),
        ("latin1.csv", HEADER.encode() + "".join(f"r{i}@example.com,Ren\xe9e,D,FR\n" for i in range(50)).encode("latin-1"), "--encoding"),
        ("bad.parquet", b"PAR1 this is not parquet PAR1", "not a readable Parquet file"),
        ("bad.json", b"[{\"email\": \"a@example.com\"", "not a JSON array"),
        ("object.json", b"{\"email\": \"a@example.com\"}", "not a JSON array"),
        ("truncated.csv.gz", TRUNCATED_GZIP, "truncated"),
    ],
)
def test_unreadable_files_stop_with_a_clear_error_and_write_nothing(con, tmp_path, name, data, message):
    with pytest.raises(MailflowError, match=message) as err:
        ingest_bytes(con, tmp_path, data, name=name)
    assert name in str(err.value) and "\n" not in str(err.value)
    assert con.execute("SELECT count(*) FROM ingest_batches").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM subscribers").fetchone()[0] == 0


def test_missing_file_and_unknown_encoding(con, tmp_path):
    with pytest.raises(MailflowError, match="no such file"):
        ingest_file(con, tmp_path / "nope.csv")
    with pytest.raises(MailflowError, match="not an encoding"):
        ingest_bytes(con, tmp_path, HEADER.encode(), encoding="klingon")


@pytest.mark.parametrize("codec", ["rot13", "hex", "base64", "zlib"])
def test_only_text_encodings_are_accepted(con, tmp_path, codec):
    with pytest.raises(MailflowError, match=f"--encoding '{codec}' is not a text encoding"):
        ingest_bytes(con, tmp_path, (HEADER + "a@example.com,A,B,JP\n").encode(), encoding=codec)
    assert con.execute("SELECT count(*) FROM ingest_batches").fetchone()[0] == 0


def test_a_header_without_an_email_column_is_refused_even_without_rows(con, tmp_path):
    with pytest.raises(MailflowError, match="no email column") as err:
        ingest_bytes(con, tmp_path, b"name,country\n", name="header_only.csv")
    assert "header_only.csv" in str(err.value)
    assert con.execute("SELECT count(*) FROM ingest_batches").fetchone()[0] == 0


def test_a_deeply_nested_json_array_is_refused_with_one_line(con, tmp_path):
    with pytest.raises(MailflowError, match="element 1 of the JSON array is nested too deeply") as err:
        ingest_bytes(con, tmp_path, b"[" * 100_000 + b"]" * 100_000, name="deep.json")
    assert "deep.json" in str(err.value) and "\n" not in str(err.value)


def test_a_deeply_nested_ndjson_line_is_quarantined_alone(con, tmp_path):
    data = b'{"email": "a@example.com"}\n' + b"[" * 100_000 + b"]" * 100_000 + b'\n{"email": "b@example.com"}\n'
    result = ingest_bytes(con, tmp_path, data, name="deep.ndjson")
    assert emails(con) == ["a@example.com", "b@example.com"] and balanced(result)
    assert [(line, reason) for line, _, reason, _ in quarantine(con)] == [(2, "invalid_json: nested too deeply")]


# -- bad input: readable files with bad rows never fail the run ---------------------------------

@pytest.mark.parametrize("name,text,good,bad", ROW_CASES, ids=[c[0] for c in ROW_CASES])
def test_bad_rows_are_quarantined_and_good_rows_kept(con, tmp_path, name, text, good, bad):
    result = ingest_bytes(con, tmp_path, text.encode("utf-8"))
    assert balanced(result)
    assert emails(con) == sorted(good)
    rows = quarantine(con)
    assert {line: rule for line, rule, _, _ in rows} == bad
    for _line, rule, reason, raw in rows:
        assert reason.startswith(rule) and raw, "every quarantined row keeps its reason and original text"


def test_invalid_utf8_in_one_row_quarantines_that_row(con, tmp_path):
    rows = b"".join(f"u{i}@example.com,N,L,JP\n".encode() for i in range(200))
    result = ingest_bytes(con, tmp_path, HEADER.encode() + rows + b"bad@example.com,\xff\xfe,L,JP\n")
    assert (result.accepted, result.quarantined) == (200, 1)
    assert quarantine(con)[0][:2] == (202, "invalid_utf8")


def test_ragged_row_keeps_its_original_text(con, tmp_path):
    ingest_bytes(con, tmp_path, (HEADER + 'a@example.com,"A, with comma",B,JP,extra\n').encode())
    assert quarantine(con)[0][3] == 'a@example.com,"A, with comma",B,JP,extra'


# -- encodings, delimiters and formats ---------------------------------------------------------

def test_latin1_and_shift_jis_with_encoding(con, tmp_path):
    ingest_bytes(con, tmp_path, (HEADER + "a@example.com,Renée,D,FR\n").encode("cp1252"), name="l.csv", encoding="cp1252")
    ingest_bytes(con, tmp_path, (HEADER + "b@example.com,太郎,山田,JP\n").encode("shift_jis"), name="s.csv", encoding="shift_jis")
    names = dict(con.execute("SELECT email, first_name FROM subscribers").fetchall())
    assert names == {"a@example.com": "Renée", "b@example.com": "太郎"}


@pytest.mark.parametrize("name,text", [
    ("semi.csv", "email;first_name\na@example.com;Ann\n"),
    ("tabs.tsv", "email\tfirst_name\na@example.com\tAnn\n"),
    ("pipes.txt", "email|first_name\na@example.com|Ann\n"),
])
def test_delimiters_are_sniffed(con, tmp_path, name, text):
    ingest_bytes(con, tmp_path, text.encode(), name=name)
    assert con.execute("SELECT email, first_name FROM subscribers").fetchall() == [("a@example.com", "Ann")]


def test_json_ndjson_parquet_and_gzip(con, tmp_path):
    ingest_bytes(con, tmp_path, json.dumps([{"email": "a@example.com", "plan": "pro"}, "oops"]).encode(), name="a.json")
    ndjson = b'{"email": "b@example.com", "tags": ["x"]}\n{broken\n\n{"email": "c@example.com"}\n'
    ingest_bytes(con, tmp_path, gzip.compress(ndjson), name="b.ndjson.gz")
    pl.DataFrame({"EMAIL": ["d@example.com"], "score": [7]}).write_parquet(tmp_path / "d.parquet")
    ingest_file(con, tmp_path / "d.parquet")
    assert emails(con) == ["a@example.com", "b@example.com", "c@example.com", "d@example.com"]
    attrs = dict(con.execute("SELECT email, attributes::VARCHAR FROM subscribers").fetchall())
    assert json.loads(attrs["b@example.com"]) == {"tags": '["x"]'} and json.loads(attrs["d@example.com"]) == {"score": "7"}
    assert sorted((line, rule) for line, rule, _, _ in quarantine(con)) == [(2, "invalid_json"), (2, "not_an_object")]


def test_mapping_renames_and_types(con, tmp_path):
    text = "E-Mail,Vorname,vip,since,score\na@example.com,Ann,yes,2024-02-03,4.5\nb@example.com,Bo,maybe,2024-02-03,1\n"
    mapping = Mapping_({"E-Mail": "email", "Vorname": "first_name"}, {"vip": "boolean", "since": "date", "score": "number"})
    result = ingest_bytes(con, tmp_path, text.encode(), screen=ScreenOptions(mapping))
    assert (result.accepted, result.quarantined) == (1, 1)
    attrs = json.loads(con.execute("SELECT attributes::VARCHAR FROM subscribers").fetchone()[0])
    assert attrs == {"vip": True, "since": "2024-02-03", "score": 4.5}
    assert quarantine(con)[0][2] == "bad_value: field vip is not a boolean"


def test_status_consent_and_dates_are_checked(con, tmp_path):
    text = CONSENT + ("a@example.com,active,2024-01-01,form,confirmed\nb@example.com,gone,,,\n"
                      "c@example.com,,yesterday,,\nd@example.com,,2999-01-01,,\ne@example.com,,,,maybe\n")
    result = ingest_bytes(con, tmp_path, text.encode())
    assert emails(con) == ["a@example.com"] and result.quarantined == 4
    assert [r[1] for r in quarantine(con)] == [
        "gx:expect_column_values_to_be_in_set(status)", "bad_value",
        "gx:expect_column_values_to_be_between(opted_in_at)", "gx:expect_column_values_to_be_in_set(double_opt_in)"]


def test_block_rules_quarantine_and_allow_rules_exempt(con, tmp_path):
    add_rule(con, "*@spam.example", "block")
    add_rule(con, "ok@spam.example", "allow")
    add_rule(con, "re:^test[0-9]+@", "block")
    text = HEADER + "x@spam.example,A,B,JP\nok@spam.example,A,B,JP\ntest7@example.com,A,B,JP\nfine@example.com,A,B,JP\n"
    ingest_bytes(con, tmp_path, text.encode())
    assert emails(con) == ["fine@example.com", "ok@spam.example"]
    assert [r[2] for r in quarantine(con)] == ["blocked: matches rule *@spam.example", "blocked: matches rule re:^test[0-9]+@"]


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="a1{},()?<=!*+\\|[]^$.:-pPLxzZQEKk#", max_size=12))
@example("a{1001}")
@example("(?<=x)y")
@example("a{,3}")
@example("\\pL+")
def test_a_regex_rule_is_refused_or_runs_in_both_engines(regex):
    """Rules run in Polars at ingest (Rust regex) and in DuckDB at plan (RE2, the pattern from a column)."""
    import duckdb

    from mailflow.tasks.core.rules import blocked_by, parse_rule

    try:
        rule = parse_rule(f"re:{regex}", "block")
    except MailflowError as exc:
        assert "\n" not in str(exc)
        return
    pl.DataFrame({"email": ["test1@example.com", "a@b.c"]}).select(blocked_by([rule], pl.col("email")))
    with duckdb.connect() as con:
        con.execute("SELECT regexp_matches(e, r) FROM (VALUES ('a@b.c', $r), ('x@y.z', $r)) AS t(e, r)", {"r": rule.value}).fetchall()


def test_ingest_blocks_exactly_the_addresses_plans_block(con):
    """Ingest matches rules in Polars, plans in DuckDB (the blocked_by_rule macro): one answer for each address."""
    from mailflow.tasks.core.rules import add_rule, blocked_by, load_rules

    for pattern, action in [("*@blocked.example", "block"), ("ok@blocked.example", "allow"), ("re:^spam", "block"),
                            ("re:[0-9]{3}@", "block"), ("spam1@free.example", "allow"), ("x@Exact.example", "block"),
                            ("*@sub.blocked.example", "allow"), ("re:^zz.*@a", "block"), ("*@a.example", "block")]:
        add_rule(con, pattern, action)
    addresses = ["ann@blocked.example", "ok@blocked.example", "spam@x.example", "spam1@free.example",
                 "u123@x.example", "x@exact.example", "x@Exact.example", "y@sub.blocked.example",
                 "spam@blocked.example", "zz@a.example", "zz@b.example", "a@b@blocked.example", "plain@x.example",
                 "SPAM@x.example", "spam123@a.example"]
    polars = pl.DataFrame({"email": addresses}).select(rule=blocked_by(load_rules(con), pl.col("email")))["rule"]
    duck = [row[0] for row in con.execute("SELECT blocked_by_rule(a) FROM unnest($a::VARCHAR[]) WITH ORDINALITY AS t(a, i) "
                                          "ORDER BY i", {"a": addresses}).fetchall()]
    assert dict(zip(addresses, polars.to_list())) == dict(zip(addresses, duck))
    assert sum(p is not None for p in duck) == 7  # the cases are not all one way


def test_role_and_disposable_addresses_are_flagged_or_rejected(con, tmp_path):
    text = HEADER + "info@example.com,A,B,JP\nx@mailinator.com,A,B,JP\nann@example.com,A,B,JP\n"
    ingest_bytes(con, tmp_path, text.encode(), name="a.csv")
    flags = con.execute("SELECT email, is_role_account, is_disposable FROM subscribers ORDER BY email").fetchall()
    assert flags == [("ann@example.com", False, False), ("info@example.com", True, False), ("x@mailinator.com", False, True)]
    result = ingest_bytes(con, tmp_path, text.encode(), name="b.csv",
                          screen=ScreenOptions(reject_role_accounts=True, reject_disposable=True), list_name="strict")
    assert result.quarantined == 2


def test_a_non_ascii_local_part_is_kept_and_marked_as_needing_smtputf8(con, tmp_path):
    from mailflow.tasks.core.validate import SMTPUTF8, sendable_address

    text = HEADER + "josé@example.com,A,B,JP\n日本@Bücher.example,A,B,JP\nann@example.com,A,B,JP\na..b@example.com,A,B,JP\n"
    result = ingest_bytes(con, tmp_path, text.encode())
    marks = con.execute("SELECT email, needs_smtputf8 FROM subscribers ORDER BY email").fetchall()
    assert marks == [("ann@example.com", False), ("josé@example.com", True), ("日本@xn--bcher-kva.example", True)]
    assert result.needs_smtputf8 == 2 and [r[2].split(":")[0] for r in quarantine(con)] == ["invalid_email"]
    assert [sendable_address(email) == SMTPUTF8 for email, _ in marks] == [mark for _, mark in marks], "send agrees"


@pytest.mark.integration
def test_check_mx_quarantines_domains_that_cannot_receive_mail(con, tmp_path):
    from mailflow.tasks.core.dns import make_resolver
    from tests.support.dnsstub import DnsStub

    zone = {"example.com": {"MX": ["10 mx.example.com."]}, "nullmx.example": {"MX": ["0 ."]},
            "aonly.example": {"A": ["127.0.0.1"]}, "nomail.example": {"TXT": ['"v=spf1 -all"']}}
    text = HEADER + "a@example.com,A,B,JP\nb@nullmx.example,A,B,JP\nc@aonly.example,A,B,JP\n" \
                    "d@nomail.example,A,B,JP\ne@gone.example,A,B,JP\n"
    (tmp_path / "mx.csv").write_text(text)
    with DnsStub(zone) as stub:
        resolver = make_resolver(["127.0.0.1"], port=stub.port, timeout=2)
        result = ingest_file(con, tmp_path / "mx.csv", IngestOptions(check_mx=True), tmp_path, resolver)
        assert stub.count(name="example.com", rdtype="MX") == 1
    assert emails(con) == ["a@example.com", "c@aonly.example"]
    assert {line: rule for line, rule, _, _ in quarantine(con)} == {3: "null_mx", 5: "no_mail_host", 6: "no_domain"}
    cached = dict(con.execute("SELECT domain, status FROM domain_checks").fetchall())
    assert cached["gone.example"] == "no_domain" and cached["example.com"] == "ok"
    assert balanced(result)



@pytest.mark.integration
def test_check_mx_keeps_an_address_whose_nxdomain_comes_without_the_zones_soa(con, tmp_path):
    from mailflow.tasks.core.dns import make_resolver
    from tests.support.dnsstub import DnsStub

    # A bare NXDOMAIN is what broken resolvers say of every name: MX routing does not trust it, nor may ingest.
    (tmp_path / "mx.csv").write_text(HEADER + "a@bare.example,A,B,JP\nb@gone.example,A,B,JP\n")
    with DnsStub({"bare.example": {"BARE_NXDOMAIN": True}}) as stub:
        resolver = make_resolver(["127.0.0.1"], port=stub.port, timeout=2)
        ingest_file(con, tmp_path / "mx.csv", IngestOptions(check_mx=True), tmp_path, resolver)
    assert emails(con) == ["a@bare.example"]
    assert [(line, rule) for line, rule, _, _ in quarantine(con)] == [(3, "no_domain")]
    assert "bare.example" not in dict(con.execute("SELECT domain, status FROM domain_checks").fetchall())


# -- hostile inputs: small files that must not cost minutes, gigabytes or millions of entries ----

def quarantine_entries(con):
    return con.execute("SELECT line, rule, reason, raw, raw_sha256, count FROM quarantine ORDER BY line").fetchall()


def test_a_header_wider_than_the_limit_is_refused_before_names_are_built(con, tmp_path, monkeypatch):
    import mailflow.tasks.ingest.readers

    widths = []
    real = mailflow.tasks.ingest.readers.header_names
    monkeypatch.setattr(mailflow.tasks.ingest.readers, "header_names", lambda raw: widths.append(len(raw)) or real(raw))
    data = ("email," + ",".join(["name"] * 150_000) + "\n").encode()  # ≈750 KB: under the line limit
    with pytest.raises(MailflowError, match=f"150,001 columns, more than the limit of {MAX_COLUMNS:,}") as err:
        ingest_bytes(con, tmp_path, data, name="wide.csv")
    assert "wide.csv" in str(err.value)
    assert widths == [], "the width is checked before any per-column work"
    assert con.execute("SELECT count(*) FROM ingest_batches").fetchone()[0] == 0


def test_records_wider_than_the_limit_are_refused_in_every_format(con, tmp_path):
    wide = {"email": "a@example.com"} | {f"f{i}": "x" for i in range(1_500)}
    with pytest.raises(MailflowError, match="1,501 fields in the record at line 1, more than the limit of 1,000"):
        ingest_bytes(con, tmp_path, json.dumps(wide).encode() + b"\n", name="wide.ndjson")
    pl.DataFrame(wide).write_parquet(tmp_path / "wide.parquet")
    with pytest.raises(MailflowError, match="wide.parquet: 1,501 columns, more than the limit of 1,000"):
        ingest_file(con, tmp_path / "wide.parquet")


def test_a_header_line_longer_than_the_limit_is_refused(con, tmp_path):
    data = b"email," + b"x" * (MAX_RECORD_BYTES + 10) + b"\na@example.com,1\n"
    with pytest.raises(MailflowError, match=f"header line is longer than the limit of {MAX_RECORD_BYTES:,} bytes"):
        ingest_bytes(con, tmp_path, data, name="long_header.csv")


@pytest.mark.parametrize("batch_bytes", [BATCH_BYTES, 4096])
def test_an_over_long_line_in_a_gzip_bomb_is_quarantined_shortened_with_its_hash(con, tmp_path, batch_bytes):
    long_field = (b"x" * MAX_RECORD_BYTES + b"\n") * 8  # a quoted field: its newlines do not end the record
    line = b'bob@example.com,"' + long_field + b'",Lee,JP'
    body = (HEADER.encode() + b"ann@example.com,Ann,Lee,JP\n" + line + b"\r\nnot-an-email,Cid,Lee,JP\n"
            + b"cid@example.com,Cid,Lee,JP\n")
    result = ingest_bytes(con, tmp_path, gzip.compress(body, 9), name="bomb.csv.gz", batch_bytes=batch_bytes)
    assert (result.rows_read, result.accepted, result.quarantined) == (4, 2, 2)
    assert emails(con) == ["ann@example.com", "cid@example.com"]
    [(at, rule, reason, raw, sha, count), after] = quarantine_entries(con)
    assert (at, rule, count) == (3, "line_too_long", 1)
    assert reason == f"line_too_long: {len(line):,} bytes, more than the limit of {MAX_RECORD_BYTES:,}"
    assert raw == line[:RAW_LIMIT].decode() + f" …[truncated: {len(line):,} bytes]"
    assert sha == hashlib.sha256(line).hexdigest()
    assert after[:2] == (3 + 8 + 1, "gx:expect_column_values_to_match_regex(email)"), "lines counted through it"
    assert failing_checks(con) == []


def test_reading_a_gzip_bomb_holds_no_more_than_a_batch_and_the_limit(tmp_path):
    import tracemalloc

    from mailflow.tasks.ingest.readers import read_batches

    path = tmp_path / "bomb.csv.gz"
    path.write_bytes(gzip.compress(HEADER.encode() + b"a@example.com," + b"x" * (64 << 20) + b",B,JP\n", 9))
    tracemalloc.start()
    try:
        _, batches = read_batches(path, batch_bytes=1 << 20)
        rejected = [r for batch in batches for r in batch.rejected]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [r.reason.split(":")[0] for r in rejected] == ["line_too_long"] and rejected[0].line == 2
    assert peak < 16 << 20, f"{peak / 2**20:.0f} MB held while reading a 64 MB line"


def test_an_over_long_ndjson_line_is_quarantined_and_its_neighbours_kept(con, tmp_path):
    line = b'{"email": "b@example.com", "note": "' + b"y" * (2 * MAX_RECORD_BYTES) + b'"}'
    data = b'{"email": "a@example.com"}\n' + line + b'\n{"email": "c@example.com"}\n'
    result = ingest_bytes(con, tmp_path, gzip.compress(data), name="long.ndjson.gz")
    assert emails(con) == ["a@example.com", "c@example.com"] and balanced(result)
    [(at, rule, _, raw, sha, count)] = quarantine_entries(con)
    assert (at, rule, count, sha) == (2, "line_too_long", 1, hashlib.sha256(line).hexdigest())
    assert len(raw) < RAW_LIMIT + 50


def test_a_json_element_longer_than_the_limit_stops_the_run(con, tmp_path):
    data = b'[{"email": "a@example.com"}, {"email": "b@example.com", "note": "' + b"y" * (2 * MAX_RECORD_BYTES) + b'"}]'
    with pytest.raises(MailflowError, match="element 2 of the JSON array is longer than the limit"):
        ingest_bytes(con, tmp_path, data, name="long.json")


@pytest.mark.parametrize("batch_bytes", [BATCH_BYTES, 64 << 10])
def test_identical_bad_rows_are_one_quarantine_entry_with_their_count(con, tmp_path, batch_bytes):
    bad = b"not-an-email,Ann,Lee,JP\n" * 100_000
    body = HEADER.encode() + b"ann@example.com,Ann,Lee,JP\n" + bad + b"bob@example.com,Bob,Lee,JP\n" + bad
    result = ingest_bytes(con, tmp_path, gzip.compress(body), name="same.csv.gz", batch_bytes=batch_bytes)
    assert (result.rows_read, result.accepted, result.quarantined) == (200_002, 2, 200_000)
    [(at, rule, _, raw, sha, count)] = quarantine_entries(con)
    assert (at, rule, raw, count) == (3, "gx:expect_column_values_to_match_regex(email)", "not-an-email,Ann,Lee,JP", 200_000)
    assert sha == hashlib.sha256(b"not-an-email,Ann,Lee,JP").hexdigest()
    assert failing_checks(con) == []
    from mailflow.tasks.aggregate.export import export_table

    assert export_table(con, "quarantine", tmp_path / "q.csv") == 1
    assert pl.read_csv(tmp_path / "q.csv")["count"].to_list() == [200_000]


@pytest.mark.parametrize("batch_bytes", [BATCH_BYTES, 64 << 10])
def test_identical_good_rows_keep_the_last_and_count_the_rest_as_duplicates(con, tmp_path, batch_bytes):
    body = HEADER.encode() + b"ann@example.com,Ann,Lee,JP\n" * 50_000 + b"ann@example.com,Anne,Lee,JP\n"
    result = ingest_bytes(con, tmp_path, body, name="dups.csv", batch_bytes=batch_bytes)
    assert (result.rows_read, result.accepted, result.quarantined) == (50_001, 1, 50_000)
    assert con.execute("SELECT first_name FROM subscribers").fetchall() == [("Anne",)]
    entries = quarantine_entries(con)
    assert {rule for _, rule, *_ in entries} == {"duplicate"} and len(entries) <= 2, "within and across batches"
    assert sum(count for *_, count in entries) == 50_000 and min(line for line, *_ in entries) == 2
    assert failing_checks(con) == []


def test_a_long_rejected_row_keeps_a_shortened_raw_and_the_whole_rows_hash(con, tmp_path):
    line = "a@example.com," + "é" * 5_000 + ",B,JP"
    ingest_bytes(con, tmp_path, (HEADER + line + "\n").encode())
    [(_, rule, _, raw, sha, count)] = quarantine_entries(con)
    assert rule == "field_too_long" and count == 1
    assert raw == line[:RAW_LIMIT] + f" …[truncated: {len(line.encode()):,} bytes]"
    assert sha == hashlib.sha256(line.encode()).hexdigest()


ELEMENTS = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
                        max_leaves=8)


@given(st.lists(ELEMENTS, max_size=6), st.integers(1, 9), st.sampled_from([None, 2]))
@settings(max_examples=200, deadline=None)
def test_a_streamed_json_array_gives_what_json_loads_gives(items, step, indent):
    import io

    import mailflow.tasks.ingest.structured as structured

    text = json.dumps(items, indent=indent, ensure_ascii=False)
    data = io.BytesIO(text.encode())
    original, structured.READ_STEP = structured.READ_STEP, step  # the window's edge falls everywhere
    try:
        got = list(structured._elements(Path("x.json"), structured._reader(data, lambda d, final: d)))
    finally:
        structured.READ_STEP = original
    assert [value for _, value, _ in got] == items
    assert [json.loads(raw) for _, _, raw in got] == items
