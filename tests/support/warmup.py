"""Warm-up in tests: settings with a ramp on the default pool, a pool's synthetic mail history, a sender in its own process."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from pathlib import Path

import duckdb

from mailflow.settings import Settings, load_settings
from tests.support.campaign import SECRET_ENV, TRACKING


def warmup_settings(home: Path, port: int = 2525, warmup: dict | None = None, **ramp) -> Settings:
    """The default pool (on `port`) warming up from `ramp` (start_date, start, factor, max, groups)."""
    return load_settings(overrides={
        "home": str(home), "tracking": TRACKING, "send": {"chunk_size": 100},
        "smtp": {"pools": {"default": {"relays": [f"127.0.0.1:{port}"], "connections": 4}}},
        "warmup": {**(warmup or {}), "pools": {"default": ramp}}}, environ=SECRET_ENV)


def mail_history(con: duckdb.DuckDBPyConnection, sent: int, bounced: int, complained: int, at: datetime,
                 transport: str = "default", campaign_id: str = "history") -> None:
    """A campaign of `transport` that reached `sent` recipients at `at`: `bounced` of them bounced
    (half at once, half reported later by the bounce intake) and `complained` complained."""
    con.execute("INSERT INTO campaigns (campaign_id, name, status, spec, audience_size, chunk_count) "
                "VALUES ($c, $c, 'sent', $spec::JSON, $n, 1)",
                {"c": campaign_id, "spec": json.dumps({"transport": transport}), "n": sent})
    at_once = bounced // 2
    for sid in range(1, sent + 1):
        status = "bounced" if sid <= at_once else "delivered"
        con.execute("INSERT INTO deliveries (campaign_id, subscriber_id, variant, chunk_id, status, attempts, sent_at) "
                    "VALUES ($c, $s, 'A', 0, $st, 1, $at)", {"c": campaign_id, "s": sid, "st": status, "at": at})
    later = [(f"{campaign_id}-b{sid}", sid, "bounce") for sid in range(at_once + 1, bounced + 1)]
    later += [(f"{campaign_id}-c{sid}", sent - sid + 1, "complaint") for sid in range(1, complained + 1)]
    for event_id, sid, kind in later:
        con.execute("INSERT INTO events (event_id, campaign_id, subscriber_id, variant, type, occurred_at) "
                    "VALUES ($e, $c, $s, 'A', $t, $at)",
                    {"e": event_id, "c": campaign_id, "s": sid, "t": kind, "at": at + timedelta(hours=1)})


def send_in_process(settings: Settings, spec, chunk: Path) -> dict:
    """One sender process's whole send of one chunk (run through multiprocessing's spawn)."""
    from mailflow.tasks.send.chunk import send_chunk

    return asyncio.run(send_chunk(settings, spec, chunk))
