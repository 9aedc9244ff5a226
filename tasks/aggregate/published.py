"""Which campaigns an aggregate run touched, and their Markdown reports under a Prefect-safe artifact key."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import duckdb

from mailflow.tasks.aggregate.report import full_report
from mailflow.tasks.aggregate.report_text import report_markdown
from mailflow.tasks.core.sqlfiles import q


def artifact_key(campaign_id: str) -> str:
    """`report-<campaign>`: Prefect allows lower-case letters, digits and dashes only in a key."""
    return "report-" + (re.sub(r"[^a-z0-9]+", "-", campaign_id.lower()).strip("-") or "campaign")


def touched_campaigns(con: duckdb.DuckDBPyConnection, since: datetime) -> list[str]:
    """The campaigns the load's TEMP table names when it left one on this connection; else those with rows
    loaded or changed at or after `since` (sql/queries/report.sql says from which tables)."""
    if con.execute(q("touched_tables_present")).fetchone()[0]:
        return [cid for (cid,) in con.execute(q("report_touched_campaigns")).fetchall()]
    return [cid for (cid,) in con.execute(q("report_campaigns_loaded_since"), {"since": since}).fetchall()]


def campaign_reports(home: Path, warehouse: Path, campaign_ids: list[str]) -> dict[str, str]:
    """{artifact key: Markdown report} of each campaign."""
    return {artifact_key(cid): report_markdown(full_report(home, warehouse, cid)) for cid in campaign_ids}
