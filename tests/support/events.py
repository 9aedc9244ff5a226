"""Event log lines as the tracking service writes them (DESIGN "Files between stages"), for load and report tests."""

from __future__ import annotations

import json
from itertools import count
from pathlib import Path

_ids = count(1)


def event(type_: str = "open", subscriber_id: int | None = 1, campaign_id: str | None = "news", variant: str | None = "A",
          at: str = "2026-12-01T10:00:00+00:00", **extra) -> dict:
    return {"event_id": extra.pop("event_id", f"ev-{next(_ids)}"), "type": type_, "campaign_id": campaign_id,
            "subscriber_id": subscriber_id, "variant": variant, "occurred_at": at, "ip": "203.0.113.0",
            "user_agent": "Mozilla/5.0", **extra}


def events_file(home: Path, name: str = "track-100-0") -> Path:
    path = home / "events" / f"{name}.ndjson"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def append(path: Path, *items: dict | bytes) -> None:
    """Each dict as one whole line; bytes as they are (a torn or malformed line)."""
    with path.open("ab") as fh:
        for item in items:
            fh.write(item if isinstance(item, bytes) else json.dumps(item).encode() + b"\n")


def read_line(text: str | bytes) -> dict:
    """A line a writer wrote, with the fields it keeps under `data` (mailflow/event_line.py) beside the others."""
    record = json.loads(text)
    nested = record.pop("data", None)
    return {**record, **nested} if isinstance(nested, dict) else record
