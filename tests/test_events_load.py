"""Event logs into the warehouse: new bytes only, each event once, torn lines wait, bad lines are kept where they can be seen."""

import json
import os
import time

import pytest

from mailflow.settings import load_settings
from mailflow.tasks.aggregate import events as events_module
from mailflow.tasks.aggregate import logblocks
from mailflow.tasks.aggregate.aggregate import load_logs
from mailflow.tasks.core.checks import failing_checks
from mailflow.tasks.files.suppress import SuppressionLog
from mailflow.tasks.ingest.ingest import ingest_file
from tests.support.events import append, event, events_file
from tests.support.inputs import write_csv


def aggregate(con, home):
    return load_logs(con, load_settings(overrides={"home": str(home)}, environ={}))


def event_ids(con):
    return sorted(r[0] for r in con.execute("SELECT event_id FROM events").fetchall())


def manifest(con, path):
    return con.execute("SELECT size, bytes_loaded, rows, rejected FROM event_files WHERE file = ?", [str(path)]).fetchall()[0]


def test_events_load_once_and_a_rerun_changes_nothing(con, home):
    path = events_file(home)
    append(path, *(event(event_id=f"e{i}", subscriber_id=i) for i in range(3)))
    first = aggregate(con, home)
    assert (first["event_files"], first["events_loaded"], first["events_repeated"], first["event_lines_rejected"]) == (1, 3, 0, 0)
    assert event_ids(con) == ["e0", "e1", "e2"]
    size = path.stat().st_size
    assert manifest(con, path) == (size, size, 3, 0)
    again = aggregate(con, home)
    assert (again["event_files"], again["events_loaded"], again["event_bytes_waiting"]) == (0, 0, 0)
    assert event_ids(con) == ["e0", "e1", "e2"] and manifest(con, path) == (size, size, 3, 0)
    assert failing_checks(con, ["assert_unique_event_id"]) == []


def test_a_grown_file_is_continued_from_its_offset(con, home, monkeypatch):
    path = events_file(home)
    append(path, event(event_id="a"), event(event_id="b"))
    aggregate(con, home)
    before = path.stat().st_size
    append(path, event(event_id="c"))
    # Were the file read from its start again, a and b would be repeats; they are not read at all.
    grown = aggregate(con, home)
    assert (grown["event_files"], grown["events_loaded"], grown["events_repeated"]) == (1, 1, 0)
    assert event_ids(con) == ["a", "b", "c"]
    assert manifest(con, path) == (path.stat().st_size, path.stat().st_size, 3, 0)
    assert path.stat().st_size > before


def test_lines_across_read_blocks_are_cut_whole(con, home, monkeypatch):
    monkeypatch.setattr(logblocks, "BLOCK_BYTES", 100)  # every line straddles a block boundary
    path = events_file(home)
    append(path, *(event(event_id=f"b{i:02d}", note="x" * (i * 7)) for i in range(20)), b"[]\n")
    result = aggregate(con, home)
    assert (result["events_loaded"], result["event_lines_rejected"]) == (20, 1)
    assert len(event_ids(con)) == 20 and con.execute("SELECT count(*) FROM events WHERE data->>'note' IS NULL").fetchall() == [(0,)]
    offset, line = con.execute("SELECT byte_offset, line FROM event_rejects").fetchall()[0]
    assert path.read_bytes()[offset:] == b"[]\n" and line == 21


def test_a_torn_last_line_waits_for_its_end_then_loads(con, home):
    path = events_file(home)
    line = json.dumps(event(event_id="whole-later")).encode() + b"\n"
    append(path, event(event_id="first"), line[:25])  # the writer is half-way through its line
    torn = aggregate(con, home)
    assert (torn["events_loaded"], torn["event_lines_rejected"], torn["event_bytes_waiting"]) == (1, 0, 25)
    size = path.stat().st_size
    assert manifest(con, path) == (size, size - 25, 1, 0)
    append(path, line[25:])
    done = aggregate(con, home)
    assert (done["events_loaded"], done["event_lines_rejected"], done["event_bytes_waiting"]) == (1, 0, 0)
    assert event_ids(con) == ["first", "whole-later"]


def test_a_last_line_left_unfinished_for_an_hour_is_recorded_as_a_reject(con, home):
    path = events_file(home)
    append(path, event(event_id="ok"), b'{"event_id": "cut-off", "ty')
    assert aggregate(con, home)["event_bytes_waiting"] > 0
    hour_ago = time.time() - events_module.STALE_TAIL_SECONDS - 60
    os.utime(path, (hour_ago, hour_ago))  # its writer died mid-line and never came back
    result = aggregate(con, home)
    assert (result["events_loaded"], result["event_lines_rejected"], result["event_bytes_waiting"]) == (0, 1, 0)
    assert con.execute("SELECT line, reason, raw FROM event_rejects").fetchall() == [
        (2, "an unfinished last line, unchanged for over an hour (its writer stopped)", '{"event_id": "cut-off", "ty')]


def test_an_event_id_seen_twice_is_counted_once_in_a_file_across_files_and_across_runs(con, home):
    one, two = events_file(home, "track-1-0"), events_file(home, "track-2-0")
    append(one, event(event_id="x", ip="first"), event(event_id="x", ip="again"), event(event_id="y"))
    append(two, event(event_id="y"), event(event_id="z"))
    result = aggregate(con, home)
    assert (result["events_loaded"], result["events_repeated"]) == (3, 2)
    append(two, event(event_id="x"))  # a retried write after the run that loaded x
    assert aggregate(con, home)["events_repeated"] == 1
    assert event_ids(con) == ["x", "y", "z"]
    assert con.execute("SELECT ip FROM events WHERE event_id = 'x'").fetchall() == [("first",)], "the first line wins"
    assert failing_checks(con, ["assert_unique_event_id"]) == []


@pytest.mark.parametrize("line,reason", [
    (b"not json at all", "not JSON"),
    (b'["an", "array"]', "not a JSON object"),
    (b"\xff\xfe{}", "not UTF-8"),
    (b'{"type": "open", "occurred_at": "2026-12-01T10:00:00Z"}', "no event_id"),
    (b'{"event_id": "e", "occurred_at": "2026-12-01T10:00:00Z"}', "no type"),
    (b'{"event_id": "e", "type": "teleport", "occurred_at": "2026-12-01T10:00:00Z"}', "unknown type teleport"),
    (b'{"event_id": "e", "type": "open", "occurred_at": "yesterday"}', "occurred_at missing or not a time"),
    (b'{"event_id": "e", "type": "open", "occurred_at": "2026-12-01T10:00:00Z", "subscriber_id": "bob"}',
     "subscriber_id is not an integer"),
    (b'{"event_id": "e", "type": "click", "occurred_at": "2026-12-01T10:00:00Z", "link": "first"}',
     "link is not an integer"),
])
def test_a_malformed_line_is_recorded_with_its_file_offset_and_reason(con, home, line, reason):
    path = events_file(home)
    append(path, event(event_id="before"), b"\n", line + b"\n", event(event_id="after"))
    result = aggregate(con, home)
    assert (result["events_loaded"], result["event_lines_rejected"]) == (2, 1), "the lines around it load"
    [(file, offset, number, why, raw)] = con.execute("SELECT file, byte_offset, line, reason, raw FROM event_rejects").fetchall()
    assert (file, number, why) == (str(path), 3, reason)  # the blank line 2 carries nothing and is no reject
    assert path.read_bytes()[offset:].startswith(line)
    assert raw == (line.decode() if reason != "not UTF-8" else "\\xff\\xfe{}")
    assert manifest(con, path)[2:] == (4, 1)
    assert aggregate(con, home)["event_lines_rejected"] == 0, "recorded once"


def test_extra_fields_go_to_data_the_variant_is_kept_as_written_and_campaign_may_be_absent(con, home):
    path = events_file(home)
    append(path, event("click", event_id="c", variant="Variant B", link=2, url="https://example.com/x",
                       seconds_since_delivery=4.5, list="news"),
           event("optin_pending", event_id="o", campaign_id=None, subscriber_id=None, variant=None, list="news"))
    aggregate(con, home)
    rows = con.execute("SELECT event_id, campaign_id, variant, type, link, url, data FROM events ORDER BY 1").fetchall()
    assert [r[:6] for r in rows] == [("c", "news", "Variant B", "click", 2, "https://example.com/x"),
                                     ("o", None, None, "optin_pending", None, None)]
    assert json.loads(rows[0][6]) == {"seconds_since_delivery": 4.5, "list": "news"}
    assert json.loads(rows[1][6]) == {"list": "news"}


def test_an_unsubscribe_suppresses_the_subscriber_once_beside_the_services_own_log_line(con, home, tmp_path):
    ingest_file(con, write_csv(tmp_path / "s.csv", "email\nann@example.com\nbob@example.com\ncat@example.com\n"))
    ids = dict(con.execute("SELECT email, subscriber_id FROM subscribers").fetchall())
    # The service suppresses ann at once in its log and writes the event; bob's log line was lost with its disk.
    SuppressionLog(home, "track").append("ann@example.com", "unsubscribe", "track")
    append(events_file(home), event("unsubscribe", subscriber_id=ids["ann@example.com"]),
           event("unsubscribe", subscriber_id=ids["bob@example.com"]), event("open", subscriber_id=ids["cat@example.com"]))
    aggregate(con, home)
    aggregate(con, home)
    assert con.execute("SELECT email, cause FROM suppressions ORDER BY 1").fetchall() == [
        ("ann@example.com", "unsubscribe"), ("bob@example.com", "unsubscribe")]
    assert con.execute("SELECT email, status FROM subscribers ORDER BY 1").fetchall() == [
        ("ann@example.com", "unsubscribed"), ("bob@example.com", "unsubscribed"), ("cat@example.com", "active")]
    import polars as pl

    snapshot = pl.read_parquet(home / "suppressions" / "snapshot.parquet")
    assert sorted(snapshot["email"]) == ["ann@example.com", "bob@example.com"], "the next sends skip both"


def test_new_events_holds_exactly_this_runs_rows_for_apply_subscription_events(con, home, monkeypatch):
    seen = []
    monkeypatch.setattr(events_module, "apply_subscription_events",
                        lambda c: seen.append(c.execute("SELECT event_id, type FROM new_events ORDER BY 1").fetchall()))
    path = events_file(home)
    append(path, event("optin_pending", event_id="p1"), event("open", event_id="o1"))
    aggregate(con, home)
    append(path, event("optin_pending", event_id="p1"), event("optin_confirmed", event_id="c1"))
    aggregate(con, home)
    assert seen == [[("o1", "open"), ("p1", "optin_pending")], [("c1", "optin_confirmed")]]
    columns = [r[0] for r in con.execute("DESCRIBE events").fetchall()]
    assert "data" in columns and "loaded_at" in columns


def test_a_failed_load_moves_no_offset_and_the_next_run_loads_everything(con, home, monkeypatch):
    def broken(c):
        raise RuntimeError("apply failed")

    path = events_file(home)
    append(path, event(event_id="a"), b"garbage\n")
    monkeypatch.setattr(events_module, "apply_subscription_events", broken)
    with pytest.raises(RuntimeError, match="apply failed"):
        aggregate(con, home)
    assert con.execute("SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM event_rejects), "
                       "(SELECT count(*) FROM event_files)").fetchall() == [(0, 0, 0)]
    monkeypatch.undo()
    result = aggregate(con, home)
    assert (result["events_loaded"], result["event_lines_rejected"]) == (1, 1)


@pytest.mark.parametrize("line,reason", [
    (b"not json at all", "not JSON"),
    (b'["an", "array"]', "not a JSON object"),
    (b'{"type": "open", "occurred_at": "2026-12-01T10:00:00Z"}', "no event_id"),
    (b'{"event_id": "e", "type": "open", "occurred_at": "yesterday"}', "occurred_at missing or not a time"),
    (b'{"event_id": "e", "type": "open", "occurred_at": "2026-12-01T10:00:00Z", "link": {"n": 1}}',
     "link is not an integer"),
])
def test_a_bad_line_among_good_ones_is_judged_alike_whether_the_block_is_read_whole_or_line_by_line(con, home, line,
                                                                                                   reason):
    path = events_file(home)
    append(path, event(event_id="before", list="news"), line + b"\n", event(event_id="after"))
    result = aggregate(con, home)
    assert (result["events_loaded"], result["event_lines_rejected"]) == (2, 1)
    [(offset, number, why, raw)] = con.execute("SELECT byte_offset, line, reason, raw FROM event_rejects").fetchall()
    assert (number, why, raw) == (2, reason, line.decode())
    assert path.read_bytes()[offset:].startswith(line)
    assert json.loads(con.execute("SELECT data FROM events WHERE event_id = 'before'").fetchone()[0]) == {"list": "news"}
    assert json.loads(con.execute("SELECT data FROM events WHERE event_id = 'after'").fetchone()[0]) == {}
