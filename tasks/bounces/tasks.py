"""The bounce intake's Prefect task: a thin wrapper over bounces.fetch."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from mailflow.settings import Settings
from mailflow.tasks.bounces.fetch import fetch_bounces


@task(name="fetch_bounces", cache_policy=NO_CACHE)
def fetch_bounces_task(settings: Settings) -> dict:
    return fetch_bounces(settings)
