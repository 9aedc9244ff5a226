"""The tracking benchmark's harness: a 1 s run of each load finds every answer wrk counted in the event logs; what is missing is flagged."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest

from bench.track_bench import EXPECTED, accounting_problem, acknowledged, count_events, measure, rows_for

wrk = pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (`apt-get install wrk`)")


@pytest.fixture(scope="module")
def short_run(tmp_path_factory) -> tuple[dict, Path]:
    """The whole harness on 40 recipients: 1 s per load, 4 connections, the service's 2 workers."""
    work = tmp_path_factory.mktemp("track-bench")
    return measure(work, recipients=40, seconds=1, warmup=0, connections=4, workers=2), work / "home"


@wrk
def test_a_short_run_finds_every_answer_wrk_counted_in_the_event_logs(short_run):
    facts, _ = short_run
    assert facts["stopped"] is None  # SIGTERM stopped the service, exit 0
    assert set(facts["track"]) == {"opens", "clicks", "mix"}
    assert facts["track"]["opens"]["statuses"].keys() == {"200"} and facts["track"]["clicks"]["statuses"].keys() == {"302"}
    assert facts["track"]["mix"]["statuses"].keys() == {"200", "302"}
    assert all(r["requests"] > 0 and r["statuses"] == {"200": r["requests"]} for r in facts["bare"])
    ack, events = facts["acknowledged"], facts["events"]
    assert ack["open"] > 0 and ack["click"] > 0 and not facts["unexpected"] and facts["foreign"] == 0
    assert ack["open"] <= events["open"] <= ack["open"] + facts["slack"]
    assert ack["click"] <= events["click"] <= ack["click"] + facts["slack"]
    assert not facts["errors"].total() and facts["slack"] == 3 * 4  # three runs of four connections
    assert accounting_problem(ack, events, facts["slack"]) is None
    rows = rows_for(facts)
    logged = [r for r in rows if "events logged" in r["benchmark"]]
    assert [r["figure"] for r in logged] == [events["open"], events["click"]] and not any(r.get("problem") for r in logged)
    assert [r["unit"] for r in rows].count("req/s") == 4  # the bare baseline and the three loads


@wrk
def test_an_acknowledged_open_missing_from_the_logs_is_a_problem(short_run):
    facts, home = short_run
    ack = facts["acknowledged"]
    # take away the opens logged beyond those acknowledged (answered as wrk stopped), and one more
    drop = count_events(home, "bench-tracking-digest")[0]["open"] - ack["open"] + 1
    for log in sorted((home / "events").glob("*.ndjson")):
        kept = []
        for line in log.read_bytes().splitlines(keepends=True):
            if drop and b'"type":"open"' in line:
                drop -= 1
            else:
                kept.append(line)
        log.write_bytes(b"".join(kept))
    events, _ = count_events(home, "bench-tracking-digest")
    assert events["open"] == ack["open"] - 1
    problem = accounting_problem(ack, events, facts["slack"])
    assert problem == f"track: open: {ack['open']} acknowledged, {ack['open'] - 1} logged (missing 1)"


def test_each_status_counts_as_the_event_it_acknowledges_and_others_are_set_apart():
    runs = [({"statuses": {"200": 5, "404": 1}}, EXPECTED["opens"]),
            ({"statuses": {"302": 7, "503": 2}}, EXPECTED["clicks"]),
            ({"statuses": {"200": 3, "302": 4}}, EXPECTED["mix"])]
    assert acknowledged(runs) == (Counter(open=8, click=11), Counter({"404": 1, "503": 2}))


def test_the_accounting_allows_requests_in_flight_and_flags_anything_else():
    ack = Counter(open=100, click=50)
    assert accounting_problem(ack, Counter(open=100, click=50), slack=8) is None
    assert accounting_problem(ack, Counter(open=108, click=53), slack=8) is None  # answered as wrk stopped
    assert "open: 100 acknowledged, 99 logged (missing 1)" in accounting_problem(ack, Counter(open=99, click=50), 8)
    assert "click: 59 logged, more than 50 acknowledged + 8 in flight" in accounting_problem(ack, Counter(open=100, click=59), 8)
    assert "{'503': 3}" in accounting_problem(ack, Counter(ack), 8, unexpected=Counter({"503": 3}))
    assert "timeouts: {'read': 2}" in accounting_problem(ack, Counter(ack), 8, errors=Counter(read=2, timeout=0))
    assert "2 events name another campaign" in accounting_problem(ack, Counter(ack), 8, foreign=2)
    assert "exited 1 on SIGTERM" in accounting_problem(ack, Counter(ack), 8, stopped="exited 1 on SIGTERM")
