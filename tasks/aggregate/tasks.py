"""The aggregate stage's Prefect tasks: thin wrappers over aggregate.aggregate and the reports."""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from mailflow.settings import Settings
from mailflow.tasks.aggregate.aggregate import load_logs
from mailflow.tasks.aggregate.published import campaign_reports, touched_campaigns
from mailflow.tasks.core.warehouse import connect
from mailflow.tasks.plan.warmup import judge_pools


@task(name="load_logs", cache_policy=NO_CACHE)
def load_logs_task(settings: Settings) -> dict:
    """The load's summary and `touched_campaigns`, the campaigns it loaded rows for."""
    started = datetime.now(UTC)
    with connect(settings.warehouse, memory_limit=settings.aggregate.memory_limit) as con:
        loaded = load_logs(con, settings)
        return loaded | {"touched_campaigns": touched_campaigns(con, started)}


@task(name="judge_warmup", cache_policy=NO_CACHE)
def judge_warmup_task(settings: Settings) -> dict[str, dict]:
    """Each warming pool's step today, judged by its bounce and complaint rates once the logs are loaded."""
    if not settings.warmup.pools:
        return {}
    with connect(settings.warehouse) as con:
        return judge_pools(con, settings.home, settings.warmup, datetime.now(UTC))


@task(name="publish_reports", cache_policy=NO_CACHE)
def publish_reports_task(settings: Settings, campaign_ids: list[str]) -> list[str]:
    """A Markdown artifact per campaign, under one key per campaign (the versions before are Prefect's history)."""
    published = campaign_reports(settings.home, settings.warehouse, campaign_ids)
    for key, markdown in published.items():
        create_markdown_artifact(markdown=markdown, key=key, description="mailflow report after aggregate")
    return list(published)
