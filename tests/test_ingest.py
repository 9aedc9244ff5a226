"""Ingest: good rows upserted once, bad rows quarantined with a reason, nothing lost or doubled."""

import json
from pathlib import Path

import pytest

from mailflow import SAMPLES_DIR
from mailflow.errors import MailflowError
from tasks.ingest import ingest_file
from tests.conftest import write_csv

HEADER = "email,first_name,last_name,country\n"


def counts(result):
    return result.accepted + result.updated + result.unchanged + result.quarantined


def test_sample_file_keeps_every_row(con):
    result = ingest_file(con, SAMPLES_DIR / "subscribers.csv", "newsletter")
    assert counts(result) == result.rows_read
    assert result.quarantined > 0 and result.accepted > 2000
    assert con.execute("SELECT count(*) FROM subscribers").fetchone()[0] == result.accepted
    assert con.execute("SELECT count(*) FROM quarantine").fetchone()[0] == result.quarantined
    members = con.execute("SELECT count(*) FROM list_memberships JOIN lists USING (list_id) WHERE name='newsletter'")
    assert members.fetchone()[0] == result.accepted


def test_reingest_of_same_file_changes_nothing(con):
    first = ingest_file(con, SAMPLES_DIR / "subscribers.csv")
    before = con.execute("SELECT count(*), max(updated_at) FROM subscribers").fetchone()
    second = ingest_file(con, SAMPLES_DIR / "subscribers.csv")
    assert second.already_ingested and second.batch_id == first.batch_id
    assert con.execute("SELECT count(*), max(updated_at) FROM subscribers").fetchone() == before
    assert con.execute("SELECT count(*) FROM quarantine").fetchone()[0] == first.quarantined


def test_changed_rows_update_and_unchanged_rows_are_counted(con, tmp_path):
    ingest_file(con, write_csv(tmp_path / "a.csv", HEADER + "a@example.com,Ann,Lee,JP\nb@example.com,Bo,Kim,US\n"))
    result = ingest_file(con, write_csv(tmp_path / "b.csv", HEADER + "a@example.com,Ann,Lee,JP\nb@example.com,Bob,Kim,US\nc@example.com,,,\n"))
    assert (result.accepted, result.updated, result.unchanged, result.quarantined) == (1, 1, 1, 0)
    assert con.execute("SELECT first_name FROM subscribers WHERE email='b@example.com'").fetchone()[0] == "Bob"


def test_import_never_changes_status(con, tmp_path):
    ingest_file(con, write_csv(tmp_path / "a.csv", HEADER + "a@example.com,Ann,Lee,JP\n"))
    con.execute("UPDATE subscribers SET status='unsubscribed'")
    ingest_file(con, write_csv(tmp_path / "b.csv", HEADER + "a@example.com,Annie,Lee,JP\n"))
    assert con.execute("SELECT status, first_name FROM subscribers").fetchone() == ("unsubscribed", "Annie")


def test_bad_rows_carry_line_reason_and_raw_row(con, tmp_path):
    text = HEADER + 'ok@example.com,A,B,JP\nnot-an-email,C,D,US\n,E,F,FR\n"x@example.com","Eve\nBcc: v@example.org",G,DE\n'
    result = ingest_file(con, write_csv(tmp_path / "bad.csv", text))
    assert (result.accepted, result.quarantined) == (1, 3)
    rows = con.execute("SELECT line, reason, raw FROM quarantine ORDER BY line").fetchall()
    assert [r[0] for r in rows] == [3, 4, 5]
    assert rows[0][1].startswith("invalid_email") and json.loads(rows[0][2])["email"] == "not-an-email"
    assert rows[1][1].startswith("missing_email")
    assert rows[2][1] == "control_characters: field first_name"


def test_duplicates_in_a_file_last_row_wins(con, tmp_path):
    text = HEADER + "a@Example.com,First,X,JP\nb@example.com,B,Y,US\na@example.COM,Last,X,JP\n"
    result = ingest_file(con, write_csv(tmp_path / "dup.csv", text))
    assert (result.accepted, result.quarantined) == (2, 1)
    assert con.execute("SELECT first_name FROM subscribers WHERE email='a@example.com'").fetchone()[0] == "Last"
    assert con.execute("SELECT reason FROM quarantine").fetchone()[0] == "duplicate: superseded by line 4"


def test_extra_columns_become_attributes(con, tmp_path):
    ingest_file(con, write_csv(tmp_path / "a.csv", "Email,First Name,plan\na@example.com,Ann,pro\n"))
    row = con.execute("SELECT first_name, attributes->>'plan' FROM subscribers").fetchone()
    assert row == ("Ann", "pro")


@pytest.mark.parametrize(
    "name,content,message",
    [
        ("missing.csv", None, "no such file"),
        ("noemail.csv", "name,country\nAnn,JP\n", "no email column"),
        ("empty.csv", "", "not a readable CSV"),
    ],
)
def test_unreadable_files_stop_with_a_clear_error_and_write_nothing(con, tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(MailflowError, match=message) as err:
        ingest_file(con, path)
    assert str(path) in str(err.value)
    assert con.execute("SELECT count(*) FROM ingest_batches").fetchone()[0] == 0


def test_header_only_file_is_read_as_zero_rows(con, tmp_path):
    result = ingest_file(con, write_csv(tmp_path / "h.csv", HEADER))
    assert result.rows_read == 0 and counts(result) == 0
