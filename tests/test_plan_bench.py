"""The planning benchmark at 20k subscribers: its generated data carries every rule, and the plan it runs
plans exactly the audience an independent count expects."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from bench.plan_bench import judge, measure, refused_field
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


def facts_of(recipients: dict[str, int], records_exclusions: bool = True, timed_chunks: int = 1) -> dict:
    """What measure() returns, for a plan that wrote `recipients` (by variant) against fixed counts."""
    counts = {"matched": 1_000, "inactive": 30, "suppressed": 20, "blocked": 10, "capped": 40, "base": 940,
              "expected": 900}
    return {"counts": counts, "fields": dict.fromkeys(("variants", "ab", "send_at", "frequency_cap"), True),
            "notes": [], "planned": {"variants": recipients, "recipients": sum(recipients.values()),
                                     "records_exclusions": records_exclusions, "timed_chunks": timed_chunks,
                                     "largest_chunk": 100}}


def test_the_bench_names_what_plan_does_not_yet_honour_and_flags_a_wrong_audience():
    split = {"A": 60, "B": 60, "C": 60, "holdout": 45, "remainder": 675}
    assert judge(facts_of(split)) == (None, [])
    problem, notes = judge(facts_of({"A": 940}, records_exclusions=False, timed_chunks=0))
    assert problem is None and notes == ["partial: frequency_cap not yet honoured (audience = every rule but the cap)",
                                         "partial: variants/ab not yet honoured (every recipient 'A')",
                                         "partial: send_at local_time not yet honoured (no chunk has not_before)"]
    problem, _ = judge(facts_of({"A": 940}))  # records exclusions, so it caps: 940 is wrong
    assert "planned 940 recipients, the independent count says 900" in problem
    problem, _ = judge(facts_of({**split, "remainder": 674}))
    assert "planned 899" in problem
    problem, _ = judge(facts_of({"A": 180, "B": 0, "C": 0, "holdout": 45, "remainder": 675}))
    assert "variant A 180" in problem and "variant B 0" in problem


def test_a_refusal_names_the_field_to_drop_only_as_a_word():
    fields = dict.fromkeys(("variants", "ab", "send_at", "frequency_cap"), True)
    assert refused_field("campaign.yaml: field 'ab.test_fraction' is not supported yet", fields) == "ab"
    assert refused_field("send_at with local_time is not supported", fields) == "send_at"
    assert refused_field("the table campaign_exclusions is missing", fields) is None
    assert refused_field("variants are not supported", fields | {"variants": False}) is None
