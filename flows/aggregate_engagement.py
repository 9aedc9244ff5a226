"""Flow: fold new send ledgers and event logs into the warehouse, judge warm-up ramps, publish each touched campaign's report."""

from __future__ import annotations

from prefect import flow

from mailflow.flows.artifacts import RunProgress, result_table
from mailflow.settings import load_settings
from mailflow.tasks.aggregate.tasks import judge_warmup_task, load_logs_task, publish_reports_task
from mailflow.tasks.core.run_tables import aggregate_rows


@flow(name="aggregate_engagement")
def aggregate_engagement(config: str | None = None, overrides: dict | None = None) -> dict:
    settings = load_settings(config, overrides)
    progress = RunProgress("aggregate_engagement", 2, "steps (load the logs, publish the reports)")
    loaded = load_logs_task(settings)
    warmup = judge_warmup_task(settings)  # the day's bounces and complaints are in: warm-up ramps step up or hold
    progress.step("logs loaded")
    touched = loaded["touched_campaigns"]  # none on the runs that find nothing new: no task run to record for them
    result = loaded | {"reports": publish_reports_task(settings, touched) if touched else [], "warmup": warmup}
    progress.step("reports published")
    result_table("aggregate_engagement", aggregate_rows(result), "What this aggregate loaded into the warehouse")
    return result
