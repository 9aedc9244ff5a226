"""The live ledger tally over real ledger files, and the progress bar's line."""

import io

from mailflow.cli.output import ProgressBar, Speed, progress_line
from mailflow.tasks.files.ledger import LedgerRecord, LedgerWriter, ledger_path
from mailflow.tasks.files.tally import LedgerTally, ledger_tally, parse_lines, table_rows


def rec(sid, status, variant="A", provider="gmail", chunk_id=0):
    return LedgerRecord("c1", sid, variant, chunk_id, status, None, None, "", 1, provider=provider)


def writer(home, chunk_id=0):
    return LedgerWriter(ledger_path(home, "c1", chunk_id))


def test_in_flight_marks_turn_into_outcomes_between_polls(home):
    tally = ledger_tally(home, "c1")
    assert tally.poll().groups == {}  # no ledger directory yet
    with writer(home) as ledger:
        for sid in (1, 2, 3):
            ledger.mark_in_flight(rec(sid, "in_flight"))
        first = tally.poll()
        assert first.done == 0 and first.totals["sent"] == 3 and first.totals["in_doubt"] == 3
        ledger.append(rec(1, "delivered"))
        ledger.append(rec(2, "bounced"))
        ledger.append(rec(3, "deferred"))
        second = tally.poll()
    assert second.done == 3 and second.records == 6
    assert second.totals == {"sent": 3, "delivered": 1, "deferred": 1, "bounced": 1, "suppressed": 0,
                             "failed": 0, "in_doubt": 0}
    assert second.groups == {("A", "gmail", "delivered"): 1, ("A", "gmail", "bounced"): 1, ("A", "gmail", "deferred"): 1}


def test_a_torn_last_line_waits_for_its_newline(home):
    path = ledger_path(home, "c1", 0)
    with writer(home) as ledger:
        ledger.append(rec(1, "delivered"))
    whole = path.read_bytes()
    tally = LedgerTally(path.parent)
    line = whole.replace(b'"subscriber_id":1', b'"subscriber_id":2')
    with path.open("ab") as fh:  # a writer mid-record
        fh.write(line[:40])
    assert tally.poll().totals["delivered"] == 1
    with path.open("ab") as fh:
        fh.write(line[40:])
    assert tally.poll().totals["delivered"] == 2 and tally.poll().records == 2


def test_a_record_torn_by_a_killed_writer_is_skipped_and_the_rest_counts(home):
    path = ledger_path(home, "c1", 0)
    with writer(home) as ledger:
        ledger.append(rec(1, "in_flight"))
    with path.open("ab") as fh:
        fh.write(b'{"campaign_id":"c1","subscriber_id":1,"status":"deliv')  # killed here
    tally = LedgerTally(path.parent)
    assert tally.poll().totals["in_doubt"] == 1
    with writer(home) as ledger:  # the rerun ends the torn line, then logs on
        ledger.append(rec(2, "delivered"))
        ledger.append(rec(3, "failed"))
    after = tally.poll()
    assert after.totals["in_doubt"] == 1 and after.totals["delivered"] == 1 and after.totals["failed"] == 1
    assert after.records == 3


def test_a_poll_reads_only_the_bytes_appended_since_the_last(home):
    path = ledger_path(home, "c1", 0)
    with writer(home) as ledger:
        ledger.append(rec(1, "delivered"))
    tally = LedgerTally(path.parent)
    assert tally.poll().totals["delivered"] == 1
    # Overwrite what was read already: a tally that re-read it would now see a bounce.
    text = path.read_bytes()
    path.write_bytes(text.replace(b'"delivered"', b'"bounced"  '))
    with writer(home) as ledger:
        ledger.append(rec(2, "delivered"))
    after = tally.poll()
    assert after.totals["delivered"] == 2 and after.totals["bounced"] == 0 and after.records == 2


def test_several_files_variants_and_providers(home):
    with writer(home, 0) as a, writer(home, 1) as b:
        for sid in range(1, 11):
            a.append(rec(sid, "delivered" if sid % 5 else "bounced", variant="A", provider="gmail" if sid % 2 else "yahoo"))
        for sid in range(11, 16):
            b.mark_in_flight(rec(sid, "in_flight", variant="B", provider="other", chunk_id=1))
        b.append(rec(11, "deferred", variant="B", provider="other", chunk_id=1))
        b.append(LedgerRecord("c1", 16, "B", 1, "suppressed", None, None, "", 1))  # written before providers
        tally = ledger_tally(home, "c1").poll()
    assert tally.by("variant") == {
        "A": {"sent": 10, "delivered": 8, "deferred": 0, "bounced": 2, "suppressed": 0, "failed": 0, "in_doubt": 0},
        "B": {"sent": 6, "delivered": 0, "deferred": 1, "bounced": 0, "suppressed": 1, "failed": 0, "in_doubt": 4},
    }
    providers = tally.by("provider")
    assert list(providers) == ["gmail", "other", "unknown", "yahoo"]
    assert providers["gmail"]["sent"] == 5 and providers["yahoo"]["bounced"] == 1 and providers["unknown"]["suppressed"] == 1
    rows = table_rows(tally)
    assert [(r["by"], r["name"]) for r in rows][-1] == ("total", "all") and rows[-1]["sent"] == 16
    for axis in ("variant", "provider"):
        assert sum(r["sent"] for r in rows if r["by"] == axis) == 16
    assert tally.done == 12


def test_parse_lines_skips_what_is_not_a_record():
    block = b'{"a":1}\n{"b":\n[1]\n\n{"c":3}\n'
    assert parse_lines(block) == [{"a": 1}, {"c": 3}]
    assert parse_lines(b'{"a":1}\n{"b":2}\n') == [{"a": 1}, {"b": 2}]


def test_progress_line_shows_share_speed_and_outcomes():
    line = progress_line(2500, 10000, 125.0, {"delivered": 2400, "deferred": 60, "bounced": 40}, width=200)
    assert line.startswith("[" + "#" * 10 + "." * 30 + "]")
    assert "25.0%" in line and "2,500/10,000" in line and "125 msgs/s" in line and "eta 1m00s" in line
    assert line.endswith("delivered 2,400  deferred 60  bounced 40")
    done = progress_line(10, 10, 0.0, {"delivered": 10}, width=200)
    assert "100.0%" in done and "eta" not in done and "#" * 10 in done and "." not in done.split("]")[0]
    assert len(progress_line(1, 3, 1.0, {}, width=50)) == 50
    assert "100.0%" in progress_line(0, 0, 0.0, {})  # an empty audience is done


def test_speed_counts_only_this_runs_sending():
    speed = Speed(window=5.0)
    # 1,000 logged by an earlier run, 10 s of Prefect starting, then 100/s for 20 s, then idle.
    assert [speed.add(t, 1000) for t in (0.0, 10.0)] == [0.0, 0.0]
    rates = [speed.add(10.0 + s, 1000 + 100 * s) for s in range(1, 21)]
    assert rates[-1] == 100.0
    assert speed.add(40.0, 3000) < 100.0  # the window sees the idle tail
    assert speed.average() == 100.0
    assert Speed().average() == 0.0


def test_progress_bar_draws_until_stopped_and_ends_its_line(home):
    with writer(home) as ledger:
        ledger.append(rec(1, "delivered"))
        ledger.append(rec(2, "in_flight"))
    out = io.StringIO()
    with ProgressBar(ledger_tally(home, "c1").poll, 4, out, interval=0.01):
        pass
    text = out.getvalue()
    assert text.startswith("\r[") and text.endswith("\x1b[K\n")
    assert "1/4" in text and "delivered 1" in text


def test_a_failing_poll_stops_the_bar_quietly():
    def poll():
        raise OSError("gone")

    out = io.StringIO()
    with ProgressBar(poll, 4, out, interval=0.01) as bar:
        pass
    assert out.getvalue() == "" and not bar._thread.is_alive()
