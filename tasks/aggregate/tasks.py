"""The aggregate stage's Prefect tasks: thin wrappers over aggregate.aggregate."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from mailflow.settings import Settings
from mailflow.tasks.aggregate.aggregate import load_logs
from mailflow.tasks.core.warehouse import connect


@task(name="load_logs", cache_policy=NO_CACHE)
def load_logs_task(settings: Settings) -> dict[str, int]:
    with connect(settings.warehouse) as con:
        return load_logs(con, settings)
