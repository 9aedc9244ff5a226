"""The recipient-index benchmark on a small set: its lookups agree with the dict baseline, and its rows say so."""

from bench.track_index_bench import measure


def test_the_index_benchmark_finds_what_the_dict_finds_and_reports_build_lookup_and_size(tmp_path):
    rows = measure(tmp_path, recipients=1_000, chunks=10, lookups=20)
    assert [r["unit"] for r in rows] == ["s", "µs", "bytes/recipient"]
    assert not any(r.get("problem") for r in rows), rows
    assert rows[0]["ratio"] > 0 and rows[1]["ratio"] > 0 and rows[2]["figure"] <= 12.5
    assert len(list(tmp_path.glob("chunk-*.parquet"))) == 10
