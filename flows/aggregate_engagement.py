"""Flow: fold new send ledgers into the warehouse's deliveries and campaign status."""

from __future__ import annotations

from prefect import flow

from mailflow.settings import load_settings
from mailflow.tasks.aggregate.tasks import load_logs_task


@flow(name="aggregate_engagement")
def aggregate_engagement(config: str | None = None, overrides: dict | None = None) -> dict:
    settings = load_settings(config, overrides)
    return load_logs_task(settings)
