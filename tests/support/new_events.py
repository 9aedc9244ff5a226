"""The aggregate stage's TEMP table new_events, filled with event lines as the tracking service writes them."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

# The columns of `events` (DESIGN.md); whatever else an event line holds goes into `data`
COLUMNS = ("event_id", "campaign_id", "subscriber_id", "variant", "type", "link", "url", "occurred_at", "is_machine",
           "ip", "user_agent", "kind", "reason", "status", "smtp_code", "diagnostic")


def new_events(con, events: list[dict] = ()) -> None:
    """(Re)create TEMP new_events with the columns of `events` (and a JSON `data` column where the schema
    has none yet) holding `events`, as the aggregate leaves it before apply_subscription_events."""
    columns = [r[0] for r in con.execute("SELECT column_name FROM information_schema.columns "
                                          "WHERE table_name = 'events' ORDER BY ordinal_position").fetchall()]
    extra = "" if "data" in columns else ", NULL::JSON AS data"
    con.execute(f"CREATE OR REPLACE TEMP TABLE new_events AS SELECT *{extra} FROM events LIMIT 0")
    for event in events:
        row = {"event_id": uuid.uuid4().hex, "occurred_at": datetime.now(UTC).isoformat(), "is_machine": False, **event}
        data = {k: v for k, v in row.items() if k not in COLUMNS}
        names = [c for c in COLUMNS if c in row]
        con.execute(f"INSERT INTO new_events ({', '.join(names)}, data) VALUES ({', '.join('?' * len(names))}, ?)",
                    [row[c] for c in names] + [json.dumps(data)])
