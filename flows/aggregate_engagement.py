"""Flow: fold new send ledgers and event logs into the warehouse, judge warm-up ramps, publish each touched campaign's report."""

from __future__ import annotations

from prefect import flow

from mailflow.settings import load_settings
from mailflow.tasks.aggregate.tasks import judge_warmup_task, load_logs_task, publish_reports_task


@flow(name="aggregate_engagement")
def aggregate_engagement(config: str | None = None, overrides: dict | None = None) -> dict:
    settings = load_settings(config, overrides)
    loaded = load_logs_task(settings)
    warmup = judge_warmup_task(settings)  # the day's bounces and complaints are in: warm-up ramps step up or hold
    return loaded | {"reports": publish_reports_task(settings, loaded["touched_campaigns"]), "warmup": warmup}
