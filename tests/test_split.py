"""The A/B split: a stable hash of (campaign, subscriber) cut into holdout, weighted variants and remainder."""

from collections import Counter

from mailflow.tasks.core.sqlfiles import q
from mailflow.tasks.files.manifest import chunk_entries, read_manifest
from mailflow.tasks.plan.audience import plan
from mailflow.tasks.plan.chunks import release_remainder
from mailflow.tasks.plan.split import band_lists, bands, unit_hash, variant_of
from tests.support.planning import add_subscribers, campaign, chunk_frames, recipients

AB = """variants:
  - {name: A, weight: 1}
  - {name: B, weight: 1, subject: "B"}
  - {name: C, weight: 2, subject: "C"}
"""
EIGHT = "variants:\n" + "".join(f"  - {{name: V{i}, weight: {i + 1}}}\n" for i in range(8))
# chi-square critical values at p = 0.001: a correct split fails one run in a thousand
CRITICAL = {2: 13.82, 3: 16.27, 4: 18.47, 9: 27.88}


def split(con, campaign_id, spec, ids):
    """The plan's split (the macros its classification calls) over `ids`: {id: variant}."""
    con.execute(q("stage_plan_split_functions"))
    names, los = band_lists(bands(spec))
    return dict(con.execute("SELECT i, plan_band(plan_unit(i, $c), $names, $los) FROM unnest($ids::BIGINT[]) AS t(i)",
                            {"ids": list(ids), "c": campaign_id, "names": names, "los": los}).fetchall())


def chi_square(observed: Counter, expected: dict[str, float]) -> float:
    return sum((observed[k] - e) ** 2 / e for k, e in expected.items())


def test_the_split_in_sql_is_the_python_reference(con, tmp_path):
    spec = campaign(tmp_path, extra=EIGHT + "ab: {test_fraction: 0.7, holdout_fraction: 0.1}")
    assert [b.variant for b in bands(spec)] == ["holdout", *(f"V{i}" for i in range(8)), "remainder"]
    ids = [*range(1, 5001), 2**40 + 7, 2**62 + 12345]
    for cid in ("spring-sale", "x", "日本"):
        assert split(con, cid, spec, ids) == {i: variant_of(unit_hash(cid, i), bands(spec)) for i in ids}
    assert unit_hash("spring-sale", 1) == 0.40742154752899973  # a value fixed by the formula, not by a library


def test_weights_holdout_and_remainder_match_their_shares_on_100k(con, tmp_path):
    spec = campaign(tmp_path, extra=AB + "ab: {test_fraction: 0.2, holdout_fraction: 0.05}")
    n = 100_000
    observed = Counter(split(con, "spring-sale", spec, range(1, n + 1)).values())
    expected = {"holdout": 0.05 * n, "A": 0.05 * n, "B": 0.05 * n, "C": 0.10 * n, "remainder": 0.75 * n}
    assert chi_square(observed, expected) < CRITICAL[4]


def test_without_ab_the_variants_split_everyone_and_without_variants_everyone_is_a(con, tmp_path):
    spec = campaign(tmp_path, extra=AB)
    observed = Counter(split(con, "c", spec, range(1, 100_001)).values())
    assert chi_square(observed, {"A": 25_000, "B": 25_000, "C": 50_000}) < CRITICAL[2]
    assert set(split(con, "c", campaign(tmp_path), range(1, 1001)).values()) == {"A"}


def test_two_campaigns_split_independently(con, tmp_path):
    spec = campaign(tmp_path, extra=AB)
    ids = range(1, 100_001)
    first, second = split(con, "spring-sale", spec, ids), split(con, "summer-sale", spec, ids)
    table = Counter((first[i], second[i]) for i in ids)
    share = {"A": 0.25, "B": 0.25, "C": 0.5}
    expected = {(a, b): share[a] * share[b] * len(ids) for a in share for b in share}
    assert chi_square(table, expected) < CRITICAL[4]  # (3 - 1) x (3 - 1) degrees of freedom


def test_a_replan_gives_everyone_the_same_variant(con, home, tmp_path):
    add_subscribers(con, [f"u{i}@example.com" for i in range(2000)])
    spec = campaign(tmp_path, extra=AB + "ab: {test_fraction: 0.5, holdout_fraction: 0.1}")
    plan(con, home, spec, 300)
    before = {sid: v for sid, (v, _) in recipients(con, spec.campaign_id).items()}
    add_subscribers(con, [f"late{i}@example.com" for i in range(50)])
    plan(con, home, spec, 300)
    after = {sid: v for sid, (v, _) in recipients(con, spec.campaign_id).items()}
    assert {sid: after[sid] for sid in before} == before and len(after) == 2050


def test_the_holdout_gets_no_chunk_and_the_remainder_waits_for_the_winner(con, home, tmp_path):
    add_subscribers(con, [f"u{i}@example.com" for i in range(3000)])
    spec = campaign(tmp_path, extra=AB + "ab: {test_fraction: 0.3, holdout_fraction: 0.1}")
    result = plan(con, home, spec, 200)
    planned = recipients(con, spec.campaign_id)
    holdout = {sid for sid, (v, chunk) in planned.items() if v == "holdout"}
    assert holdout and all(planned[sid][1] is None for sid in holdout)
    frames = chunk_frames(home, spec.campaign_id)
    mailed = [sid for _, frame in frames for sid in frame["subscriber_id"].to_list()]
    assert not holdout & set(mailed) and len(mailed) == len(set(mailed)) == result.audience_size == 3000 - len(holdout)
    for entry, frame in frames:
        assert set(frame["variant"]) == {entry["variant"]} and entry["held"] == (entry["variant"] == "remainder")
        assert frame.height == entry["rows"]
    assert result.variants["holdout"] == len(holdout)
    entries = release_remainder(home, spec.campaign_id, "C")
    assert not any(e.held for e in entries) and chunk_entries(read_manifest(home, spec.campaign_id)) == entries
    assert {e.variant for e in entries} == {"A", "B", "C"}
