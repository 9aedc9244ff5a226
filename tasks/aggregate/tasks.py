"""The aggregate stage's Prefect tasks: thin wrappers over aggregate.aggregate and the reports."""

from __future__ import annotations

from datetime import datetime

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from mailflow.settings import Settings
from mailflow.tasks.aggregate.aggregate import load_logs
from mailflow.tasks.aggregate.marts import refresh_marts
from mailflow.tasks.aggregate.published import reports_since
from mailflow.tasks.core.warehouse import connect


@task(name="load_logs", cache_policy=NO_CACHE)
def load_logs_task(settings: Settings) -> dict[str, int]:
    with connect(settings.warehouse) as con:
        loaded = load_logs(con, settings)
        refresh_marts(con)  # on the load's connection: its TEMP tables of touched campaigns narrow the refresh
        return loaded


@task(name="publish_reports", cache_policy=NO_CACHE)
def publish_reports_task(settings: Settings, since: datetime) -> list[str]:
    """A Markdown artifact per campaign the run touched, under one key per campaign (its history is Prefect's)."""
    published = reports_since(settings.home, settings.warehouse, since)
    for key, markdown in published.items():
        create_markdown_artifact(markdown=markdown, key=key, description="mailflow report after aggregate")
    return list(published)
