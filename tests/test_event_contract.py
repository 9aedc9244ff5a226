"""The event-line contract: every writer of home/events/ puts an event's other fields under one `data` object."""

import ast
import asyncio
import json
from pathlib import Path

import pytest

from mailflow.event_line import DATA, FIELDS, contract, event_line
from mailflow.tasks.bounces.intake import BounceRecorder
from mailflow.tasks.track.events import EventLog

ROOT = Path(__file__).resolve().parent.parent
# The modules that write event-log lines, each through event_line (the test below finds any other).
WRITERS = {"tasks/track/events.py", "tasks/bounces/intake.py"}


def keys_of(path: Path) -> list[set[str]]:
    return [set(json.loads(line)) for line in path.read_text().splitlines()]


def test_other_fields_move_under_data_and_merge_with_a_data_object_it_has():
    assert contract({"event_id": "e", "type": "open"}) == {"event_id": "e", "type": "open"}
    assert contract({"type": "unsubscribe", "method": "link", "source": "track"}) == {
        "type": "unsubscribe", "data": {"method": "link", "source": "track"}}
    assert contract({"type": "bounce", "source": "x", "data": {"delayed": True}}) == {
        "type": "bounce", "data": {"source": "x", "delayed": True}}
    assert contract({"type": "open", "data": "text"}) == {"type": "open", "data": {"data": "text"}}, \
        "a data that is no object is one more field"
    assert json.loads(event_line({"type": "optin_pending", "list": "news", "ip": "203.0.113.0"})) == {
        "type": "optin_pending", "ip": "203.0.113.0", "data": {"list": "news"}}


def test_the_tracking_services_log_writes_lines_of_the_contract(tmp_path):
    async def run():
        log = EventLog(tmp_path)
        await log.write({"type": "open", "campaign_id": "c", "subscriber_id": 1, "ip": None})
        await log.write({"type": "optin_confirmed", "list": "news", "email": "a@example.com", "first_name": "A"})
        await log.write({"type": "bounce", "kind": "soft", "source": "webhook:ses", "unmapped": False, "delayed": True})
        await log.close()
    asyncio.run(run())
    [path] = (tmp_path / "events").glob("*.ndjson")
    assert all(keys <= {*FIELDS, DATA} for keys in keys_of(path))
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert DATA not in lines[0]
    assert lines[1][DATA] == {"list": "news", "email": "a@example.com", "first_name": "A"}
    assert lines[2][DATA] == {"source": "webhook:ses", "unmapped": False, "delayed": True}


def test_bounce_intake_writes_lines_of_the_contract(tmp_path):
    row = {"kind": "hard", "reason": "user_unknown", "status": "5.1.1", "smtp_code": 550, "diagnostic": "no such user",
           "source": "dsn", "campaign_id": "c", "subscriber_id": 1, "variant": "A", "delayed": True}
    unsubscribe = {"action": "unsubscribe", "campaign_id": "c", "subscriber_id": 2, "source": "mailto"}
    with BounceRecorder(tmp_path) as recorder:
        recorder.record(b"raw message", [row, unsubscribe])
    lines = [json.loads(line) for line in recorder.path.read_text().splitlines()]
    assert all(set(line) <= {*FIELDS, DATA} for line in lines)
    assert lines[0][DATA] == {"source": "dsn", "unmapped": False, "delayed": True}
    assert lines[1][DATA] == {"method": "mailto", "source": "mailto"}


@pytest.mark.parametrize("folder", ["tasks", "mailflow", "flows"])
def test_every_module_writing_event_lines_goes_through_event_line(folder):
    """A module naming the events folder and dumping JSON is one of WRITERS, and each uses event_line."""
    for path in sorted((ROOT / folder).rglob("*.py")):
        name = str(path.relative_to(ROOT))
        nodes = list(ast.walk(ast.parse(path.read_text(encoding="utf-8"))))
        names = {n.id for n in nodes if isinstance(n, ast.Name)} | {n.attr for n in nodes if isinstance(n, ast.Attribute)}
        dumps_json = any(isinstance(n, ast.Attribute) and n.attr == "dumps" and isinstance(n.value, ast.Name)
                         and n.value.id == "json" for n in nodes)
        if name in WRITERS:
            assert "event_line" in names and not dumps_json, f"{name} writes event lines without event_line"
        elif "events_dir" in names or "EVENTS_DIR" in names:
            assert not dumps_json, f"{name} may write event lines: through event_line, and add it to WRITERS"
