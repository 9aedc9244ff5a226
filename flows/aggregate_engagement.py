"""Flow: fold new send ledgers and event logs into the warehouse, then publish each touched campaign's report."""

from __future__ import annotations

from prefect import flow

from mailflow.settings import load_settings
from mailflow.tasks.aggregate.tasks import load_logs_task, publish_reports_task


@flow(name="aggregate_engagement")
def aggregate_engagement(config: str | None = None, overrides: dict | None = None) -> dict:
    settings = load_settings(config, overrides)
    loaded = load_logs_task(settings)
    touched = loaded["touched_campaigns"]  # none on the runs that find nothing new: no task run to record for them
    return loaded | {"reports": publish_reports_task(settings, touched) if touched else []}
