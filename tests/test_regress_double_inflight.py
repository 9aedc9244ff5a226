"""Regression (review of the sending engine): Fail-over to another destination logs one in_flight record per attempt, not one per destination tried."""
import asyncio, json
from collections import Counter
from mailflow.tasks.demo.receiver import Receiver, free_port
from mailflow.tasks.files.ledger import ledger_path
from mailflow.tasks.send.chunk import send_chunk
from tests.test_dispatch import settings_for
from tests.test_send import SPEC, write_chunk


def test_one_in_flight_per_attempt(tmp_path):
    with Receiver(record=True) as live:
        settings = settings_for(tmp_path / "h", f"127.0.0.1:{free_port()}", f"127.0.0.1:{live.port}", relay_failures=100)
        asyncio.run(send_chunk(settings, SPEC, write_chunk(tmp_path / "c.parquet", [f"u{i}@example.com" for i in range(20)])))
    lines = [json.loads(x) for x in ledger_path(settings.home, "news", 0).read_text().splitlines()]
    marks = Counter((r["subscriber_id"], r["attempt"]) for r in lines if r["status"] == "in_flight")
    assert max(marks.values()) == 1
