"""The aggregate benchmark's harness at a small scale: it loads every generated record and event, and its rows carry the figures."""

from bench.aggregate_bench import measure, rows_for


def test_a_small_run_loads_everything_it_generated_and_reports_against_the_baseline(tmp_path):
    facts = measure(events=3000, records=400, new_events=500, out=tmp_path)
    assert (facts["events"], facts["attempts"], facts["deliveries"]) == (3500, 400, 200)
    assert facts["loaded"]["events_loaded"] == 3000 and facts["incremental"]["events_loaded"] == 500
    assert facts["incremental"]["records_read"] == 0  # the ledgers had not grown
    assert 0 < facts["machine"] < facts["events"]  # the generated proxies and scanners are flagged, people are not
    rows = rows_for(facts, events=3000, records=400, new_events=500)
    assert [r["unit"] for r in rows] == ["s", "s", "s", "s"] and not any(r.get("problem") for r in rows)
    assert facts["full_cpu"] > 0 and "CPU s" in rows[0]["note"]
    assert rows[0]["ratio"] == facts["full"] / facts["baseline"]
    assert (tmp_path / "aggregate-3k-400-data" / "done").exists()  # cached for the next run
