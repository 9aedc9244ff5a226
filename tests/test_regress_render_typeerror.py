"""Regression (review of the sending engine): A non-Jinja error while rendering one recipient (a TypeError from its data) fails that recipient only."""
import asyncio
from dataclasses import replace
import polars as pl
from mailflow.tasks.demo.receiver import Receiver
from mailflow.tasks.send.chunk import send_chunk
from tests.test_dispatch import final_records, settings_for
from tests.test_send import SPEC


def test_type_error_in_one_render(tmp_path):
    n = 30
    frame = pl.DataFrame({"chunk_id": [0] * n, "subscriber_id": list(range(1, n + 1)), "variant": ["A"] * n,
                          "email": [f"u{i}@example.com" for i in range(n)], "first_name": ["A"] * n,
                          "last_name": [None] * n,
                          "attributes": ['{"visits": 3}'] * 25 + ['{"visits": "many"}'] + ['{"visits": 3}'] * 4},
                         schema_overrides={"chunk_id": pl.Int32, "subscriber_id": pl.Int64, "last_name": pl.String})
    frame.write_parquet(tmp_path / "c.parquet")
    spec = replace(SPEC, subject="Visit number {{ subscriber.visits + 1 }}")
    with Receiver(record=True) as rx:
        settings = settings_for(tmp_path / "h", f"127.0.0.1:{rx.port}")
        counts = asyncio.run(send_chunk(settings, spec, tmp_path / "c.parquet"))
    assert (counts["delivered"], counts["failed"]) == (29, 1)
    [failed] = [r for r in final_records(settings).values() if r["status"] == "failed"]
    assert failed["subscriber_id"] == 26 and "TypeError" in failed["detail"]
