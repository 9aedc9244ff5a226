"""Stand-in for tasks/plan/segments.py (fix/segments): a campaign's lists and `where` as the TEMP TABLE campaign_target."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb

from mailflow.errors import MailflowError
from mailflow.tasks.core.sqlfiles import q
from mailflow.tasks.core.warehouse import inputs
from mailflow.tasks.plan.condition import matching


def target_audience(con: duckdb.DuckDBPyConnection, *, lists: Sequence[str], include: Sequence[str],
                    exclude: Sequence[str], where: str | None, params: Mapping[str, Any], campaign_id: str,
                    segment_dirs: Sequence[Path]) -> int:
    """Fill the TEMP TABLE campaign_target(subscriber_id) with the matched audience, before statuses and
    suppressions; return its size. Segments come with fix/segments, which replaces this module."""
    if include or exclude:
        raise MailflowError("campaign field 'segment': saved segments are not available in this build")
    # The condition runs alone; the plan intersects it with every mandatory filter, so it can only narrow.
    condition = matching(con, where or "TRUE", "campaign field 'where'")
    try:
        with inputs(con, campaign_condition=condition):
            con.execute(q("stage_target_stand_in"), {"lists": list(lists)})
    except duckdb.Error as exc:  # the query is fixed and tested: an error while it runs is the condition's
        raise MailflowError(f"campaign field 'where': {str(exc).strip().splitlines()[0]}") from None
    return con.execute(q("stand_in_target_size")).fetchall()[0][0]
