"""Planning in tests: campaign files written by the test, subscribers inserted straight into the warehouse."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import polars as pl

from mailflow.tasks.files.manifest import campaign_dir, chunk_entries, read_manifest
from mailflow.tasks.plan.campaign import CampaignSpec, campaign_id_for, load_campaign

CAMPAIGN = """name: {name}
from: "News <news@example.com>"
template: newsletter
subject: "Hi {{{{ subscriber.first_name }}}}"
{extra}
"""


def campaign(tmp_path: Path, name: str = "Spring Sale!", extra: str = "") -> CampaignSpec:
    path = tmp_path / f"{campaign_id_for(name) or 'x'}.yaml"
    path.write_text(CAMPAIGN.format(name=name, extra=extra))
    return load_campaign(path)


def add_subscribers(con: duckdb.DuckDBPyConnection, emails: list[str], attributes: list[dict] | None = None,
                    status: str = "active") -> None:
    """Subscribers as ingest leaves them, without ingest's cost (tests of 100k recipients)."""
    frame = pl.DataFrame({"email": emails, "attributes": [json.dumps(a) for a in attributes or [{}] * len(emails)]})
    con.register("new_subscribers", frame)
    con.execute("INSERT INTO subscribers (email, email_original, first_name, status, attributes) "
                "SELECT email, email, 'F', $status, attributes::JSON FROM new_subscribers", {"status": status})
    con.unregister("new_subscribers")


def chunk_frames(home: Path, campaign_id: str) -> list[tuple[dict, pl.DataFrame]]:
    """Each manifest entry (as a dict) with its chunk file's rows."""
    manifest, folder = read_manifest(home, campaign_id), campaign_dir(home, campaign_id)
    return [(entry.__dict__, pl.read_parquet(folder / entry.file)) for entry in chunk_entries(manifest)]


def recipients(con: duckdb.DuckDBPyConnection, campaign_id: str) -> dict[int, tuple[str, int | None]]:
    rows = con.execute("SELECT subscriber_id, variant, chunk_id FROM campaign_recipients WHERE campaign_id = $c",
                       {"c": campaign_id}).fetchall()
    return {sid: (variant, chunk) for sid, variant, chunk in rows}


def exclusions(con: duckdb.DuckDBPyConnection, campaign_id: str) -> dict[str, str]:
    """email -> rule"""
    return dict(con.execute("SELECT s.email, e.rule FROM campaign_exclusions AS e JOIN subscribers AS s "
                            "USING (subscriber_id) WHERE e.campaign_id = $c", {"c": campaign_id}).fetchall())
