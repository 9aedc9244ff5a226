"""Chunks: cut per variant and send time, every domain dealt out in proportion, each with its not_before."""

import math
from collections import Counter
from datetime import UTC, datetime

from mailflow.tasks.plan.audience import PlanOptions, plan
from mailflow.tasks.plan.campaign import SendAt
from mailflow.tasks.plan.schedule import next_local
from tests.support.planning import add_subscribers, campaign, chunk_frames

NOW = datetime(2026, 3, 28, 23, 30, tzinfo=UTC)  # the night before Europe's clocks go forward


def domain_mix():
    """Big providers, mid-sized domains and singletons, as a real list has them."""
    sizes = {"gmail.com": 3100, "googlemail.com": 400, "outlook.com": 1500, "yahoo.co.jp": 900, "mid1.example": 230,
             "mid2.example": 170, "mid3.example": 61, **{f"single{i}.example": 1 for i in range(140)}}
    return [f"u{i}@{domain}" for domain, n in sizes.items() for i in range(n)]


def test_every_chunk_holds_each_domain_in_proportion(con, home, tmp_path):
    emails = domain_mix()
    add_subscribers(con, emails)
    spec = campaign(tmp_path)
    result = plan(con, home, spec, 500)
    frames = chunk_frames(home, spec.campaign_id)
    sizes = [frame.height for _, frame in frames]
    assert max(sizes) <= 500 and max(sizes) - min(sizes) <= 1 and sum(sizes) == len(emails)
    assert result.chunk_count == len(frames) == math.ceil(len(emails) / 500)
    totals = Counter(e.split("@")[1] for e in emails)
    for _, frame in frames:
        counts = Counter(frame["email"].str.split("@").list.get(1).to_list())
        for domain, total in totals.items():
            share = frame.height * total / len(emails)
            assert math.floor(share) - 1 <= counts[domain] <= math.ceil(share) + 1, (domain, counts[domain], share)
        providers = Counter("gmail" if d in ("gmail.com", "googlemail.com") else d for d in counts.elements())
        gmail = frame.height * (totals["gmail.com"] + totals["googlemail.com"]) / len(emails)
        assert math.floor(gmail) - 1 <= providers["gmail"] <= math.ceil(gmail) + 1  # a provider group too


def test_chunk_ids_are_unique_across_variants_and_rows_follow_their_entries(con, home, tmp_path):
    add_subscribers(con, domain_mix())
    spec = campaign(tmp_path, extra="variants: [{name: A}, {name: B, subject: B}]")
    plan(con, home, spec, 400)
    frames = chunk_frames(home, spec.campaign_id)
    ids = [frame["chunk_id"].unique().to_list() for _, frame in frames]
    assert all(len(i) == 1 for i in ids) and len({i[0] for i in ids}) == len(frames)
    for entry, frame in frames:
        assert entry["file"].endswith(f"chunk-{frame['chunk_id'][0]:05d}.parquet") and frame.height == entry["rows"]
        assert set(frame["variant"]) == {entry["variant"]}


def test_a_fixed_send_time_schedules_the_campaign(con, home, tmp_path):
    add_subscribers(con, [f"u{i}@example.com" for i in range(30)])
    spec = campaign(tmp_path, extra="send_at: '2026-04-01T09:00:00+09:00'\n"
                                    "variants: [{name: A}, {name: B, send_at: '2026-04-02T12:00:00Z'}]")
    result = plan(con, home, spec, 100, PlanOptions(now=NOW))
    entries = {entry["variant"]: entry["not_before"] for entry, _ in chunk_frames(home, spec.campaign_id)}
    assert entries == {"A": "2026-04-01T00:00:00+00:00", "B": "2026-04-02T12:00:00+00:00"}  # a variant's own time
    assert result.status == "scheduled" and result.next_send == "2026-04-01T00:00:00+00:00"
    assert con.execute("SELECT status FROM campaigns").fetchone()[0] == "scheduled"


def test_a_campaign_sent_now_is_planned_not_scheduled(con, home, tmp_path):
    add_subscribers(con, [f"u{i}@example.com" for i in range(3)])
    result = plan(con, home, campaign(tmp_path), 100)
    assert result.status == "planned" and result.next_send is None
    assert [entry["not_before"] for entry, _ in chunk_frames(home, "spring-sale")] == [None]


def test_local_time_groups_recipients_by_the_instant_it_is_there(con, home, tmp_path):
    zones = ["Asia/Tokyo", "Europe/Paris", "America/New_York", "Not/AZone", "", None, "../../etc/passwd"]
    attributes = [{"timezone": z} if z is not None else {} for z in zones for _ in range(3)]
    add_subscribers(con, [f"u{i}@example.com" for i in range(len(attributes))], attributes)
    spec = campaign(tmp_path, extra="send_at: {local_time: '09:00', default_zone: 'Asia/Tokyo'}")
    result = plan(con, home, spec, 100, PlanOptions(now=NOW))
    got = {}
    for entry, frame in chunk_frames(home, spec.campaign_id):
        for attrs in frame["attributes"].to_list():
            got.setdefault(entry["not_before"], Counter())[attrs] += 1
    tokyo = "2026-03-29T00:00:00+00:00"  # 09:00 JST on the 29th: Tokyo's next 9 o'clock after NOW
    paris = "2026-03-29T07:00:00+00:00"  # 09:00 CEST: Paris has moved to summer time by then
    new_york = "2026-03-29T13:00:00+00:00"  # 09:00 EDT
    assert set(got) == {tokyo, paris, new_york}
    assert sum(got[tokyo].values()) == 3 * 5  # Tokyo and every recipient without a valid zone
    assert sum(got[paris].values()) == sum(got[new_york].values()) == 3
    assert result.status == "scheduled" and result.next_send == tokyo


def test_next_local_time_is_after_now_and_lands_after_a_skipped_hour():
    at = SendAt(local_time="02:30", default_zone="UTC")
    moment = next_local(at, "Europe/Paris", NOW)  # 02:30 does not exist in Paris on 2026-03-29
    assert moment > NOW and moment.isoformat() == "2026-03-29T01:30:00+00:00"
    assert next_local(SendAt(local_time="23:00"), "UTC", NOW).isoformat() == "2026-03-29T23:00:00+00:00"


def test_chunk_files_are_cut_from_a_stream_in_chunk_order_and_rows_out_of_order_fail(tmp_path):
    import subprocess
    import sys

    import pyarrow as pa
    import pytest

    from mailflow.errors import MailflowError
    from mailflow.tasks.plan.chunks import write_chunk_files

    def stream(chunk_ids):
        batch = pa.record_batch({"chunk_id": pa.array(chunk_ids, pa.int32()), "email": [f"u{i}@x.example" for i in range(len(chunk_ids))]})
        return pa.RecordBatchReader.from_batches(batch.schema, [batch.slice(0, 3), batch.slice(3)])

    assert write_chunk_files(stream([0, 0, 1, 1, 1, 2]), tmp_path) == {0: 2, 1: 3, 2: 1}  # a chunk split across batches
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"chunk-0000{i}.parquet" for i in range(3)]
    with pytest.raises(MailflowError, match="rows of chunk 0 did not come together"):
        write_chunk_files(stream([0, 1, 0]), tmp_path / "again")
    # cutting DuckDB's stream must not pull pandas in (Array.to_numpy did: a quarter second of a 1M plan)
    probe = ("import sys, pathlib, tempfile, duckdb; from mailflow.tasks.plan.chunks import write_chunk_files; "
             "rows = duckdb.connect().sql('SELECT (range // 3)::INTEGER AS chunk_id FROM range(10)').to_arrow_reader(4); "
             "print(write_chunk_files(rows, pathlib.Path(tempfile.mkdtemp())), 'pandas' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "{0: 3, 1: 3, 2: 3, 3: 1} False"
