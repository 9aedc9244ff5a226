"""Send-ledger lines with times of the test's choosing (LedgerWriter stamps the clock's), for aggregate tests."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

from mailflow.tasks.files.ledger import ledger_path

SENT = datetime.fromisoformat("2026-12-01T09:00:00+00:00")


def ledger_record(subscriber_id: int, status: str = "delivered", at: datetime = SENT, campaign_id: str = "news",
                  **extra) -> dict:
    code = {"delivered": 250, "deferred": 451, "bounced": 550}.get(status)
    return {"campaign_id": campaign_id, "subscriber_id": subscriber_id, "variant": "A", "chunk_id": 0, "status": status,
            "smtp_code": code, "enhanced_status": None, "detail": "", "attempt": 1, "kind": None, "reason": None,
            "provider": "other", "retry_at": None, "unsent": False, "logged_at": at.isoformat(), "seq": 1, **extra}


def write_ledger(home: Path, *records: dict | bytes, campaign_id: str = "news") -> Path:
    """Append each record as one whole line (bytes as they are: a torn line) to chunk 0's ledger."""
    path = ledger_path(home, campaign_id, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as fh:
        for record in records:
            fh.write(record if isinstance(record, bytes) else json.dumps(record).encode() + b"\n")
    return path


def at(seconds: float) -> str:
    """An event time `seconds` after SENT, as the tracking service writes it."""
    return (SENT + timedelta(seconds=seconds)).isoformat()
