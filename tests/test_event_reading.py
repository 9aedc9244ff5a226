"""Event blocks read whole by Polars stage the same rows as read line by line in SQL."""

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailflow.tasks.aggregate import events as events_module
from mailflow.tasks.aggregate.events import stage_events
from mailflow.tasks.core.warehouse import connect

_text = st.text(alphabet=st.sampled_from('ab :"\\{}[]é\t'), max_size=6)
_value = st.one_of(st.none(), _text, st.integers(-5, 5), st.booleans(), st.lists(st.integers(0, 2), max_size=2),
                   st.dictionaries(st.sampled_from(["n", "m"]), st.integers(0, 2), max_size=1))
_good = st.fixed_dictionaries({
    "event_id": st.sampled_from(["e1", "e2", "e3", ""]),
    "type": st.sampled_from(["open", "click", "bounce", "nope"]),
    "occurred_at": st.sampled_from(["2026-12-01T10:00:00+00:00", "yesterday"]),
}, optional={"subscriber_id": st.one_of(st.integers(1, 3), st.sampled_from(["2", "x"])), "link": _value,
             "user_agent": _value, "ip": _value, "list": _value, "seconds": _value, "campaign_id": _value})


@st.composite
def _line(draw) -> bytes:
    record = draw(_good)
    kind = draw(st.sampled_from(["compact", "compact", "spaced", "blank colon", "bad"]))
    if kind == "bad":
        return draw(st.sampled_from([b"not json", b'["a"]', b"null", b'{"event_id": "e9"', b"", b"  "]))
    if kind == "blank colon":
        return json.dumps(record, separators=(",", " : ")).encode()
    return json.dumps(record, separators=(",", ":") if kind == "compact" else None, ensure_ascii=False).encode()


def _staged(tmp_path, name: str, data: bytes) -> list[tuple]:
    home = tmp_path / name
    (home / "events").mkdir(parents=True)
    (home / "events" / "track-1-0.ndjson").write_bytes(data)
    with connect(home / "mailflow.duckdb") as con:
        stage_events(con, home)
        rejects = con.execute("SELECT line, reject, raw FROM staged_events ORDER BY line").fetchall()
        rows = con.execute("SELECT * EXCLUDE (loaded_at, data), data::VARCHAR FROM new_events ORDER BY event_id").fetchall()
    return rejects + [(*row[:-1], json.loads(row[-1])) for row in rows]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(_line(), min_size=1, max_size=8), torn=st.booleans())
def test_a_block_read_whole_stages_the_same_rows_as_read_line_by_line(tmp_path_factory, monkeypatch, lines, torn):
    tmp_path = tmp_path_factory.mktemp("reading")
    data = b"\n".join(lines) + (b'\n{"event_id": "torn' if torn else b"\n")
    whole = _staged(tmp_path, "whole", data)
    with monkeypatch.context() as patch:
        patch.setattr(events_module, "read_records", lambda block: None)
        by_line = _staged(tmp_path, "by-line", data)
    assert whole == by_line

