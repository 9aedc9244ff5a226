"""Every send-ledger record becomes one delivery_attempts row, read from where the last run stopped; deliveries keeps the final state."""

import json
from datetime import timedelta

import duckdb

from mailflow.settings import load_settings
from mailflow.tasks.aggregate.aggregate import load_logs
from mailflow.tasks.core.sqlfiles import schema_migrations
from mailflow.tasks.core.warehouse import migrate
from mailflow.tasks.files.ledger import LedgerRecord, LedgerWriter, ledger_path
from tests.support.events import append, event, events_file
from tests.support.ledgers import SENT, ledger_record, write_ledger


def aggregate(con, home):
    return load_logs(con, load_settings(overrides={"home": str(home)}, environ={}))


def attempts(con):
    return con.execute("SELECT subscriber_id, attempt, status, smtp_code FROM delivery_attempts "
                       "ORDER BY subscriber_id, logged_at, byte_offset").fetchall()


def test_every_try_is_kept_and_deliveries_holds_the_final_answer(con, home):
    write_ledger(home, ledger_record(1, "in_flight"), ledger_record(1, "deferred", SENT + timedelta(seconds=1)),
                 ledger_record(1, "in_flight", SENT + timedelta(minutes=5), attempt=2),
                 ledger_record(1, "delivered", SENT + timedelta(minutes=5, seconds=1), attempt=2),
                 ledger_record(2, "bounced", kind="hard", reason="user_unknown", enhanced_status="5.1.1"))
    assert aggregate(con, home)["records_read"] == 5
    assert attempts(con) == [(1, 1, "in_flight", None), (1, 1, "deferred", 451), (1, 2, "in_flight", None),
                             (1, 2, "delivered", 250), (2, 1, "bounced", 550)]
    assert con.execute("SELECT subscriber_id, status, attempts, smtp_code FROM deliveries ORDER BY 1").fetchall() == [
        (1, "delivered", 2, 250), (2, "bounced", 1, 550)]
    row = con.execute("SELECT kind, reason, enhanced_status, provider FROM delivery_attempts WHERE subscriber_id = 2").fetchone()
    assert row == ("hard", "user_unknown", "5.1.1", "other")


def test_a_rerun_adds_nothing_and_a_grown_ledger_is_continued_from_its_offset(con, home):
    path = write_ledger(home, ledger_record(1), ledger_record(2))
    aggregate(con, home)
    again = aggregate(con, home)
    assert (again["files_loaded"], again["records_read"]) == (0, 0)
    assert len(attempts(con)) == 2
    write_ledger(home, ledger_record(3, "deferred"))
    grown = aggregate(con, home)
    assert (grown["files_loaded"], grown["records_read"]) == (1, 1)
    assert [r[0] for r in attempts(con)] == [1, 2, 3]
    assert con.execute("SELECT bytes, rows FROM loaded_files WHERE path = ?", [str(path)]).fetchone() == (
        path.stat().st_size, 3)
    dupes = con.execute("SELECT count(*) FROM (SELECT file, byte_offset FROM delivery_attempts GROUP BY ALL "
                        "HAVING count(*) > 1)").fetchone()[0]
    assert dupes == 0


def test_a_torn_last_line_waits_and_is_loaded_once_whole(con, home):
    line = json.dumps(ledger_record(2, "bounced")).encode()
    path = write_ledger(home, ledger_record(1), line[:20])
    assert aggregate(con, home)["records_read"] == 1
    assert con.execute("SELECT bytes FROM loaded_files WHERE path = ?", [str(path)]).fetchone()[0] < path.stat().st_size
    assert aggregate(con, home)["records_read"] == 0  # still unfinished: still waiting, not lost
    write_ledger(home, line[20:] + b"\n")
    assert aggregate(con, home)["records_read"] == 1
    assert attempts(con) == [(1, 1, "delivered", 250), (2, 1, "bounced", 550)]


def test_a_resumed_chunk_restarts_seq_yet_no_record_is_taken_for_another(con, home):
    with LedgerWriter(ledger_path(home, "news", 0)) as w:
        w.append(LedgerRecord("news", 1, "A", 0, "deferred", 451, "4.2.0", "busy", 1))
    with LedgerWriter(ledger_path(home, "news", 0)) as w:  # a new process: seq starts at 1 again
        w.append(LedgerRecord("news", 1, "A", 0, "delivered", 250, None, "", 2))
    aggregate(con, home)
    assert con.execute("SELECT list(seq ORDER BY byte_offset) FROM delivery_attempts").fetchone()[0] == [1, 1]
    assert attempts(con) == [(1, 1, "deferred", 451), (1, 2, "delivered", 250)]
    assert con.execute("SELECT status, attempts FROM deliveries").fetchone() == ("delivered", 2)


def test_the_run_says_which_campaigns_and_subscribers_it_touched(con, home):
    write_ledger(home, ledger_record(1), ledger_record(2))
    append(events_file(home), event("open", 7, campaign_id="other"), event("bounce", None, campaign_id="third"))
    aggregate(con, home)
    assert sorted(r[0] for r in con.execute("SELECT campaign_id FROM touched_campaigns").fetchall()) == [
        "news", "other", "third"]
    assert sorted(r[0] for r in con.execute("SELECT subscriber_id FROM touched_subscribers").fetchall()) == [1, 2, 7]
    write_ledger(home, ledger_record(3))
    aggregate(con, home)  # the next run replaces them with its own
    assert con.execute("SELECT list(campaign_id) FROM touched_campaigns").fetchone()[0] == ["news"]
    assert con.execute("SELECT list(subscriber_id) FROM touched_subscribers").fetchone()[0] == [3]
    aggregate(con, home)
    assert con.execute("SELECT count(*) FROM touched_campaigns").fetchone()[0] == 0  # nothing new: empty, present


def test_ledgers_loaded_before_attempts_were_kept_are_read_again_once(tmp_path):
    con = duckdb.connect(str(tmp_path / "old.duckdb"))
    for version, _, sql in schema_migrations():
        if version < 13:
            con.execute(sql)
    con.execute("INSERT INTO schema_migrations (version, name) SELECT range, 'old' FROM range(1, 13)")
    con.execute("INSERT INTO loaded_files (path, bytes, rows) VALUES ('/h/ledger/news/chunk-00000.ndjson', 90, 1), "
                "('/h/suppressions/log/track-1.ndjson', 40, 1)")
    migrate(con)
    assert con.execute("SELECT list(path) FROM loaded_files").fetchone()[0] == ["/h/suppressions/log/track-1.ndjson"]


def test_the_aggregate_summary_does_not_call_suppression_logs_ledger_files(capsys):
    from mailflow.cli.output import print_aggregate

    print_aggregate({"records_read": 0, "files_loaded": 1, "deliveries": 5, "suppressions": 2, "events_loaded": 0,
                     "event_files": 0, "events_repeated": 0, "event_lines_rejected": 0, "event_bytes_waiting": 0})
    first = capsys.readouterr().out.splitlines()[0]
    assert first == ("loaded 0 ledger records; 1 file grew (ledgers, suppression logs, campaign moves); "
                     "5 deliveries and 2 suppressed addresses in the warehouse")
