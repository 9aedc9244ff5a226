"""The preflight stage's Prefect task: a thin wrapper over preflight.run_preflight and its verdict on a send."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from mailflow.settings import Settings
from mailflow.tasks.preflight.preflight import run_preflight, stop_on_failure


@task(name="preflight_checks", cache_policy=NO_CACHE)
def preflight_checks_task(settings: Settings, campaign_id: str, by: str) -> list[dict]:
    """Every check, as a table on the run in the Prefect UI; a FAIL aborts the campaign before its first message."""
    spec, checks = run_preflight(settings, campaign_id)
    rows = [c.as_dict() for c in checks]
    create_table_artifact(table=rows, description=f"mailflow preflight of campaign {campaign_id}")
    stop_on_failure(settings, spec, checks, by)
    return rows
