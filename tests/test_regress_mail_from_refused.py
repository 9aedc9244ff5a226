"""Regression (review of the sending engine): A relay that refuses MAIL FROM (530: credentials missing) defers and pauses the send; it never bounces the list."""
import asyncio

import pytest

from mailflow.errors import NeedsAttention
from mailflow.tasks.demo.receiver import Receiver
from mailflow.tasks.send.chunk import send_chunk
from tests.test_dispatch import settings_for, final_records
from tests.test_send import SPEC, write_chunk


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_relay_wanting_auth(tmp_path):
    with Receiver(record=True, auth={"user": "pw"}) as rx:  # no credentials configured for this relay
        settings = settings_for(tmp_path / "h", f"127.0.0.1:{rx.port}", error_budget=5)
        with pytest.raises(NeedsAttention, match="relay refused the sender"):
            asyncio.run(send_chunk(settings, SPEC, write_chunk(tmp_path / "c.parquet", [f"u{i}@example.com" for i in range(30)])))
    recs = final_records(settings).values()
    assert {(r["status"], r["kind"]) for r in recs} == {("deferred", "soft")}  # nobody bounced, nobody suppressed
