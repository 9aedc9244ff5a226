"""Event logs of the contract read by DuckDB's parallel reader: slices from an offset, torn lines, and the fall back to the block reader."""

import json
import os
import time
from contextlib import contextmanager

import pytest

from mailflow.errors import MailflowError
from mailflow.event_line import event_line
from mailflow.settings import load_settings
from mailflow.tasks.aggregate import events as events_module
from mailflow.tasks.aggregate import tasks as aggregate_tasks
from mailflow.tasks.aggregate.aggregate import load_logs
from mailflow.tasks.aggregate.fastread import whole_end
from mailflow.tasks.core.warehouse import connect
from tests.support.events import append, event, events_file


def aggregate(con, home):
    return load_logs(con, load_settings(overrides={"home": str(home)}, environ={}))


def write(path, *events):
    with path.open("ab") as fh:
        for item in events:
            fh.write(item if isinstance(item, bytes) else event_line(item))


@pytest.fixture
def blocks_read(monkeypatch):
    """The blocks the block reader staged: none when DuckDB's reader took every line."""
    seen = []
    real = events_module.stage_block

    def counting(con, block):
        seen.append(block)
        real(con, block)
    monkeypatch.setattr(events_module, "stage_block", counting)
    return seen


def manifest(con, path):
    return con.execute("SELECT size, bytes_loaded, rows, rejected FROM event_files WHERE file = ?", [str(path)]).fetchall()[0]


def test_a_file_of_the_contract_is_read_by_duckdb_with_its_data(con, home, blocks_read):
    path = events_file(home)
    write(path, event(event_id="o"), event("click", event_id="c", link=1, url="https://example.com/a"),
          event("unsubscribe", event_id="u", method="link", source="track"))
    result = aggregate(con, home)
    assert (result["events_loaded"], result["event_lines_rejected"], blocks_read) == (3, 0, [])
    rows = dict(con.execute("SELECT event_id, data FROM events").fetchall())
    assert json.loads(rows["u"]) == {"method": "link", "source": "track"} and json.loads(rows["o"]) == {}
    assert manifest(con, path) == (path.stat().st_size, path.stat().st_size, 3, 0)


def test_a_grown_file_is_read_from_its_offset_and_a_torn_last_line_waits(con, home, blocks_read):
    path = events_file(home)
    write(path, event(event_id="a"))
    aggregate(con, home)
    line = event_line(event(event_id="c"))
    write(path, event(event_id="b"), line[:20])
    grown = aggregate(con, home)
    assert (grown["events_loaded"], grown["events_repeated"], grown["event_bytes_waiting"]) == (1, 0, 20)
    write(path, line[20:])
    assert aggregate(con, home)["events_loaded"] == 1
    assert sorted(r[0] for r in con.execute("SELECT event_id FROM events").fetchall()) == ["a", "b", "c"]
    assert blocks_read == [] and manifest(con, path)[1:3] == (path.stat().st_size, 3)


def test_a_line_the_judge_rejects_sends_its_file_to_the_block_reader_which_keeps_where_it_is(con, home, blocks_read):
    good, bad = events_file(home, "track-1-0"), events_file(home, "track-2-0")
    write(good, event(event_id="g1"), event(event_id="g2"))
    write(bad, event(event_id="b1"), event(event_id="b2", occurred_at="yesterday"), event(event_id="b3"))
    result = aggregate(con, home)
    assert (result["events_loaded"], result["event_lines_rejected"]) == (4, 1)
    assert [b.file for b in blocks_read] == [str(bad)], "only the file with the bad line"
    [(file, offset, line, reason)] = con.execute("SELECT file, byte_offset, line, reason FROM event_rejects").fetchall()
    assert (file, line, reason) == (str(bad), 2, "occurred_at missing or not a time")
    assert bad.read_bytes()[offset:].startswith(b'{"event_id":"b2"')


def test_an_old_flat_file_is_read_by_the_block_reader_and_keeps_its_fields(con, home, blocks_read):
    path = events_file(home)
    append(path, event(event_id="o"), event("bounce", event_id="x", kind="soft", source="dsn", delayed=True))
    assert aggregate(con, home)["events_loaded"] == 2
    assert len(blocks_read) == 1
    [data] = con.execute("SELECT data FROM events WHERE event_id = 'x'").fetchone()
    assert json.loads(data) == {"source": "dsn", "delayed": True}


def test_a_line_that_is_no_json_falls_back_and_is_kept_as_a_reject(con, home, blocks_read):
    path = events_file(home)
    write(path, event(event_id="a"), b"not json\n", event(event_id="b"))
    result = aggregate(con, home)
    assert (result["events_loaded"], result["event_lines_rejected"], len(blocks_read)) == (2, 1, 1)


def test_an_event_id_twice_in_a_file_read_by_duckdb_keeps_its_first_line(con, home, blocks_read):
    path = events_file(home)
    write(path, *(event(event_id=f"e{i}") for i in range(50)), event(event_id="e7", ip="198.51.100.0"))
    result = aggregate(con, home)
    assert (result["events_loaded"], result["events_repeated"], blocks_read) == (50, 1, [])
    assert con.execute("SELECT ip FROM events WHERE event_id = 'e7'").fetchall() == [("203.0.113.0",)]


def test_a_stale_unfinished_line_after_the_slice_is_a_reject_numbered_after_the_lines_read(con, home):
    path = events_file(home)
    write(path, event(event_id="a"), event(event_id="b"), b'{"event_id": "cut')
    assert aggregate(con, home)["events_loaded"] == 2
    hour_ago = time.time() - events_module.STALE_TAIL_SECONDS - 60
    os.utime(path, (hour_ago, hour_ago))
    assert aggregate(con, home)["event_lines_rejected"] == 1
    assert con.execute("SELECT line FROM event_rejects").fetchall() == [(3,)]


def test_the_end_of_the_whole_lines_is_found_from_any_offset(tmp_path):
    path = tmp_path / "f.ndjson"
    path.write_bytes(b"ab\ncd\nef")
    size = path.stat().st_size
    assert [whole_end(path, start, size) for start in (0, 3, 6)] == [6, 6, 6]
    path.write_bytes(b"ab")
    assert whole_end(path, 0, 2) == 0


def test_the_loads_memory_limit_is_a_setting_a_share_of_ram_or_an_amount():
    assert load_settings(environ={}).aggregate.memory_limit == "50%"
    assert load_settings(environ={"MAILFLOW_AGGREGATE__MEMORY_LIMIT": "8GB"}).aggregate.memory_limit == "8GB"
    with pytest.raises(MailflowError, match="aggregate.memory_limit 'lots'"):
        load_settings(overrides={"aggregate": {"memory_limit": "lots"}}, environ={})


def test_the_aggregate_task_opens_the_warehouse_with_that_limit(tmp_path, monkeypatch):
    settings = load_settings(overrides={"home": str(tmp_path / "h"), "aggregate": {"memory_limit": "1GiB"}}, environ={})
    limits = []

    @contextmanager
    def watched(path, **kwargs):
        with connect(path, **kwargs) as con:
            limits.append(con.execute("SELECT current_setting('memory_limit')").fetchone()[0])
            yield con
    monkeypatch.setattr(aggregate_tasks, "connect", watched)
    aggregate_tasks.load_logs_task.fn(settings)
    assert limits == ["1.0 GiB"]
