"""The preflight stage's Prefect task: a thin wrapper over preflight.run_preflight and its verdict on a send."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from mailflow.settings import Settings
from mailflow.tasks.preflight.preflight import run_preflight, stop_on_failure


@task(name="preflight_checks", cache_policy=NO_CACHE)
def preflight_checks_task(settings: Settings, campaign_id: str, by: str) -> list[dict]:
    """Every check; a FAIL aborts the campaign before its first message (NeedsAttention)."""
    spec, checks = run_preflight(settings, campaign_id)
    stop_on_failure(settings, spec, checks, by)
    return [c.as_dict() for c in checks]
