"""Regression (review of the sending engine): Recipients that never reach the relay (suppressed at send time) do not reset the count of consecutive relay failures: a dead relay still pauses the chunk."""
import asyncio

import pytest

from mailflow.errors import NeedsAttention
import polars as pl
from mailflow.tasks.demo.receiver import free_port
from mailflow.tasks.files.suppress import write_snapshot
from mailflow.tasks.send.chunk import send_chunk
from tests.test_dispatch import settings_for
from tests.test_send import SPEC, write_chunk


def test_dead_relay_with_some_suppressed(tmp_path):
    settings = settings_for(tmp_path / "h", f"127.0.0.1:{free_port()}", error_budget=20)
    emails = [f"u{i}@example.com" for i in range(200)]
    write_snapshot(settings.home, pl.DataFrame({"email": emails[::10], "cause": ["unsubscribed"] * 20}))
    with pytest.raises(NeedsAttention, match="paused"):
        asyncio.run(send_chunk(settings, SPEC, write_chunk(tmp_path / "c.parquet", emails)))

