"""Deferred recipients: exponential back-off, retry when due, give up after send.give_up_after."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from mailflow.tasks.demo.receiver import Fault, Receiver
from mailflow.tasks.ingest.ingest import ingest_file
from mailflow.tasks.plan.audience import plan
from mailflow.tasks.plan.campaign import CampaignSpec
from mailflow.tasks.send.chunk import load_plan, send_chunk
from mailflow.tasks.send.retry import deferred_chunks
from tests.support.campaign import SPEC, final_records, settings_for, write_chunk
from tests.support.inputs import write_csv

pytestmark = pytest.mark.integration
BUSY = {"busy.example": Fault("RCPT", "451 4.3.0 Try again later")}


def run(settings, chunk, **kwargs):
    return asyncio.run(asyncio.wait_for(send_chunk(settings, SPEC, chunk, **kwargs), 60))


def test_deferred_backs_off_exponentially_and_is_retried_when_due(tmp_path):
    chunk = write_chunk(tmp_path / "c.parquet", ["a@busy.example", "b@example.com"])
    with Receiver(record=True, faults=BUSY) as rx:
        settings = settings_for(tmp_path / "h", f"127.0.0.1:{rx.port}", retry_first=600, retry_max_interval=3600)
        start = datetime.now(UTC)
        assert run(settings, chunk)["deferred"] == 1
        first = final_records(settings)[1]
        due = datetime.fromisoformat(first["retry_at"])
        assert timedelta(seconds=590) < due - start < timedelta(seconds=700)
        assert run(settings, chunk, retry=True) == {"not_due": 1}  # nothing is due yet
        later = due + timedelta(seconds=1)
        assert run(settings, chunk, retry=True, now=later)["deferred"] == 1  # still busy: attempt 2
        second = final_records(settings)[1]
        assert second["attempt"] == 2
        gap = datetime.fromisoformat(second["retry_at"]) - datetime.now(UTC)
        assert timedelta(seconds=1150) < gap <= timedelta(seconds=1200)  # doubled
    with Receiver(record=True) as rx:  # the domain accepts mail again
        settings = settings_for(tmp_path / "h", f"127.0.0.1:{rx.port}")
        counts = run(settings, chunk, retry=True, now=datetime.now(UTC) + timedelta(hours=2))
        assert counts == {"not_due": 0, "delivered": 1}
        assert [r for m in rx.received for r in m.recipients] == ["a@busy.example"]  # b was not sent again
    final = final_records(settings)[1]
    assert (final["status"], final["attempt"]) == ("delivered", 3)


def test_deferred_too_long_is_given_up_as_an_expired_soft_bounce(tmp_path):
    chunk = write_chunk(tmp_path / "c.parquet", ["a@busy.example"])
    with Receiver(record=True, faults=BUSY) as rx:
        settings = settings_for(tmp_path / "h", f"127.0.0.1:{rx.port}", give_up_after=3600)
        run(settings, chunk)
        counts = run(settings, chunk, retry=True, now=datetime.now(UTC) + timedelta(hours=2))
        assert len(rx.received) == 0
    assert counts["bounced"] == 1
    record = final_records(settings)[1]
    assert (record["status"], record["kind"], record["reason"], record["enhanced_status"]) == \
        ("bounced", "soft", "expired", "4.4.7")


def test_retry_finds_only_chunks_with_deferred_recipients(con, home, tmp_path):
    ingest_file(con, write_csv(tmp_path / "s.csv", "email\n" + "".join(f"u{i}@example.com\n" for i in range(4))))
    spec = CampaignSpec(name="News", campaign_id="news", from_addr="a@example.com", subject="s", template="newsletter")
    plan(con, home, spec, 2)
    with Receiver(record=True, faults={"u3@example.com": Fault("RCPT", "450 4.2.1 busy")}) as rx:
        settings = settings_for(home, f"127.0.0.1:{rx.port}")
        _, chunks = load_plan(settings, "news")
        for chunk in chunks:
            asyncio.run(send_chunk(settings, spec, chunk.path))
    found = deferred_chunks(settings)
    assert [(s.campaign_id, c.path.name) for s, c in found] == [("news", chunks[1].path.name)]


def test_a_retry_skips_a_chunk_another_sender_holds(tmp_path):
    from mailflow.tasks.files.ledger import LedgerWriter, ledger_path

    chunk = write_chunk(tmp_path / "c.parquet", ["a@busy.example"])
    settings = settings_for(tmp_path / "h", "127.0.0.1:9")
    with LedgerWriter(ledger_path(settings.home, "news", 0)):  # a send still running
        assert run(settings, chunk, retry=True) == {"busy": 1}
        with pytest.raises(Exception, match="another process is sending this chunk"):
            run(settings, chunk)
