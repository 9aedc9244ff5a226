"""The planning benchmark at 20k subscribers: its generated data carries every rule, and the plan it runs
plans exactly the audience an independent count expects."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from bench.plan_bench import judge, measure
from bench.plan_data import generate

N = 20_000


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> tuple[Path, dict]:
    path = tmp_path_factory.mktemp("plan-bench") / "warehouse.duckdb"
    return path, generate(path, N) | {"cached": False}


def test_the_generated_warehouse_has_the_scenarios_mix_of_providers_statuses_and_history(warehouse):
    path, meta = warehouse
    with duckdb.connect(str(path), read_only=True) as con:
        share = dict(con.execute("""
            SELECT 'gmail', avg((split_part(email, '@', 2) IN ('gmail.com', 'googlemail.com'))::INT) FROM subscribers
            UNION ALL SELECT 'inactive', avg((status <> 'active')::INT) FROM subscribers
            UNION ALL SELECT 'zoned', avg((attributes->>'timezone' IS NOT NULL)::INT) FROM subscribers
            UNION ALL SELECT 'suppressed', (SELECT count(*) FROM suppressions) / (SELECT count(*) FROM subscribers)
            UNION ALL SELECT 'deliveries', (SELECT count(*) FROM deliveries) / (SELECT count(*) FROM subscribers)
        """).fetchall())
        domains = con.execute("SELECT count(DISTINCT split_part(email, '@', 2)) FROM subscribers").fetchone()[0]
        soft = con.execute("SELECT count(*) FROM deliveries WHERE kind = 'soft'").fetchone()[0]
    assert meta["counts"]["subscribers"] == N
    assert 0.27 < share["gmail"] < 0.33 and 0.02 < share["inactive"] < 0.04 and 0.27 < share["zoned"] < 0.33
    assert 0.03 < share["suppressed"] < 0.06 and 0.25 < share["deliveries"] < 0.36
    assert domains > 2_000 and soft > 0


def test_the_bench_plans_exactly_the_audience_an_independent_count_expects(warehouse, tmp_path):
    path, meta = warehouse
    facts = measure(path, meta, tmp_path)
    counts, planned = facts["counts"], facts["planned"]
    problem, notes = judge(facts)
    assert problem is None, problem
    # every rule of the scenario removes someone, so a plan that skips one cannot match
    assert min(counts["inactive"], counts["suppressed"], counts["blocked"], counts["capped"]) > 0
    assert counts["matched"] == facts["floor_rows"]
    if any("frequency_cap" in note for note in notes):  # a plan that does not cap yet: all the other rules hold
        assert planned["recipients"] == counts["base"]
    else:
        assert planned["recipients"] == counts["expected"]
    assert planned["chunks"] >= -(-planned["recipients"] // 10_000)  # chunks of at most 10k (one variant each)
