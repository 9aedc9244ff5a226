"""Which campaigns an aggregate run touched, and their Markdown reports under a Prefect-safe artifact key."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

from mailflow.tasks.aggregate.report import full_report
from mailflow.tasks.aggregate.report_text import report_markdown
from mailflow.tasks.core.sqlfiles import q


def artifact_key(campaign_id: str) -> str:
    """`report-<campaign>`: Prefect allows lower-case letters, digits and dashes only in a key."""
    return "report-" + (re.sub(r"[^a-z0-9]+", "-", campaign_id.lower()).strip("-") or "campaign")


def touched_campaigns(warehouse: Path, since: datetime) -> list[str]:
    """Campaigns with rows loaded or changed at or after `since` (sql/queries/report.sql says from which tables)."""
    from mailflow.tasks.core.warehouse import connect

    with connect(warehouse, read_only=True) as con:
        return [cid for (cid,) in con.execute(q("report_campaigns_loaded_since"), {"since": since}).fetchall()]


def reports_since(home: Path, warehouse: Path, since: datetime) -> dict[str, str]:
    """{artifact key: Markdown report} of every campaign touched since then."""
    return {artifact_key(cid): report_markdown(full_report(home, warehouse, cid)) for cid in touched_campaigns(warehouse, since)}
