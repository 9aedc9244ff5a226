"""Regression (review of the sending engine): When the error budget pauses a chunk, the messages already on the wire still get their outcome logged: none is left in doubt without ever reaching the relay."""
import asyncio
import pytest
from mailflow.errors import NeedsAttention
from mailflow.tasks.demo.receiver import free_port
from mailflow.tasks.files.ledger import ledger_path, ledger_state
from mailflow.tasks.send.chunk import send_chunk
from tests.test_dispatch import settings_for
from tests.test_send import SPEC, write_chunk


def test_pause_leaves_in_flight_rows(tmp_path):
    dead = free_port()
    settings = settings_for(tmp_path / "h", f"127.0.0.1:{dead}", error_budget=3)
    chunk = write_chunk(tmp_path / "c.parquet", [f"u{i}@example.com" for i in range(40)])
    with pytest.raises(NeedsAttention):
        asyncio.run(send_chunk(settings, SPEC, chunk))
    state = ledger_state(ledger_path(settings.home, "news", 0))
    stuck = sorted(s for s, st in state.items() if st.status == "in_flight")
    # the relay was never reached: every taken recipient must be retryable
    from mailflow.tasks.send.chunk import select_recipients
    import polars as pl
    from datetime import datetime, timezone, timedelta
    frame = pl.read_parquet(chunk)
    path = ledger_path(settings.home, "news", 0)
    todo, _, _, c = select_recipients(frame, ledger_state(path), settings, False, datetime.now(timezone.utc))
    rtodo, _, _, rc = select_recipients(frame, ledger_state(path), settings, True, datetime.now(timezone.utc) + timedelta(days=1))
    assert not stuck, f"{len(stuck)} recipients never reached the relay yet are left in doubt (not resent, not retried)"
