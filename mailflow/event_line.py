"""The event-log line contract: the event's own fields at the top level, anything else under one `data` object."""

from __future__ import annotations

import json

# The fields `events` has a column for (sql/schema/009, 011), as a line names them. Every other
# field of an event goes under `data` (a JSON object), so the aggregate stage reads the lines with
# a fixed set of columns in parallel (tasks/aggregate/fastread.py) instead of inferring each
# file's shape; `events.data` holds that object as written.
FIELDS = ("event_id", "type", "campaign_id", "subscriber_id", "variant", "link", "url", "occurred_at", "ip",
          "user_agent", "kind", "reason", "status", "smtp_code", "diagnostic")
DATA = "data"


def contract(event: dict) -> dict:
    """The event with its other fields moved under `data` (merged into a `data` object it already has)."""
    extra = {k: v for k, v in event.items() if k not in FIELDS and k != DATA}
    given = event.get(DATA)
    if not extra and (given is None or isinstance(given, dict)):
        return event
    line = {k: v for k, v in event.items() if k in FIELDS}
    if given is not None and not isinstance(given, dict):
        extra = {DATA: given, **extra}  # a `data` that is no object is one more field
        given = None
    line[DATA] = {**extra, **(given or {})}
    return line


def event_line(event: dict) -> bytes:
    """One NDJSON line, as every writer of home/events/ writes it."""
    return json.dumps(contract(event), separators=(",", ":"), ensure_ascii=False, default=str).encode() + b"\n"
