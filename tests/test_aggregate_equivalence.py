"""The aggregate's strongest guard: loading logs in several runs, or through the block reader, gives the same warehouse as one run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bench.aggregate_bench import generate, quiet, write_events
from mailflow.settings import load_settings
from mailflow.tasks.aggregate import fastread
from mailflow.tasks.aggregate.aggregate import load_logs
from mailflow.tasks.core.warehouse import connect

EVENTS, RECORDS = 6000, 800
# Compared as each mart's key orders it (the marts the load refreshes, in full or for what it touched)
TABLES = {"events": "event_id", "deliveries": "campaign_id, subscriber_id", "suppressions": "email",
          "recipient_engagement": "campaign_id, subscriber_id", "engagement_by_variant": "campaign_id, variant",
          "engagement_by_provider": "campaign_id, provider", "engagement_by_domain": "campaign_id, domain",
          "engagement_by_hour": "campaign_id, variant, hours_since_send", "engagement_by_link": "campaign_id, link, url",
          "subscriber_engagement": "subscriber_id"}
SKIP = {"events": "loaded_at, data", "suppressions": "created_at, updated_at, suppressed_at"}


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("logs") / "source"
    generate(folder, EVENTS, RECORDS)
    write_events(quiet(), folder / "later", EVENTS, EVENTS + 1500, RECORDS // 2, "later")
    return folder


def home_with(root: Path, source: Path, folders: list[str]) -> Path:
    home = root / "home"
    shutil.copytree(source / "ledger", home / "ledger")
    (home / "events").mkdir(parents=True)
    for folder in folders:
        for path in sorted((source / folder).glob("*.ndjson")):
            shutil.copy(path, home / "events" / path.name)
    return home


def warehouse(home: Path, runs) -> dict[str, list]:
    """Each run a callable that changes the home's logs, then load_logs; the tables after the last."""
    settings = load_settings(overrides={"home": str(home)}, environ={})
    with connect(settings.warehouse) as con:
        con.execute("INSERT INTO subscribers (subscriber_id, email, email_original) "
                    "SELECT range, 'u' || range || '@d' || (range % 7) || '.example', 'u' || range FROM range(1, $n + 1)",
                    {"n": RECORDS // 2})
        for run in runs:
            run()
            load_logs(con, settings)
        tables = {}
        for name, order in TABLES.items():
            columns = [c for c, in con.execute("SELECT column_name FROM information_schema.columns "
                                               "WHERE table_name = ? ORDER BY ordinal_position", [name]).fetchall()]
            kept = [c for c in columns if c not in SKIP.get(name, "").split(", ")]
            tables[name] = con.execute(f"SELECT {', '.join(kept)} FROM {name} ORDER BY {order}").fetchall()
        tables["data"] = [(i, json.loads(d)) for i, d in con.execute("SELECT event_id, data FROM events ORDER BY 1").fetchall()]
    return tables


def test_logs_loaded_in_runs_with_a_growing_file_equal_one_load_of_everything(source, tmp_path):
    at_once = warehouse(home_with(tmp_path / "a", source, ["events", "later"]), [lambda: None])
    home = home_with(tmp_path / "b", source, ["events"])
    later = sorted((source / "later").glob("*.ndjson"))
    target = home / "events" / later[0].name
    data = later[0].read_bytes()
    cut = data.index(b"\n", len(data) // 3) + 25  # a torn line in the middle of the file

    def first_part():
        target.write_bytes(data[:cut])

    def the_rest():
        target.write_bytes(data)
    in_runs = warehouse(home, [lambda: None, first_part, the_rest])
    assert len(at_once["events"]) == EVENTS + 1500 and at_once["engagement_by_hour"]
    for name, rows in at_once.items():
        assert in_runs[name] == rows, name


def test_the_block_reader_gives_the_same_warehouse_as_duckdbs_reader(source, tmp_path, monkeypatch):
    fast = warehouse(home_with(tmp_path / "a", source, ["events"]), [lambda: None])
    monkeypatch.setattr(fastread, "keeps_contract", lambda path, start: False)  # every file: the block reader
    blocks = warehouse(home_with(tmp_path / "b", source, ["events"]), [lambda: None])
    assert any(data for _, data in fast["data"])
    for name, rows in fast.items():
        assert blocks[name] == rows, name
