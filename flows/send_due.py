"""Flow: send every campaign's chunks that are due (scheduled every few minutes), except paused or cancelled ones."""

from __future__ import annotations

from prefect import flow
from prefect.states import State

from mailflow import interrupt
from mailflow.errors import Interrupted
from mailflow.flows.artifacts import RunProgress, result_table
from mailflow.flows.send_campaign import send_campaign
from mailflow.settings import load_settings
from mailflow.tasks.core.run_tables import due_rows
from mailflow.tasks.send.tasks import due_campaigns_task


@flow(name="send_due")
def send_due(config: str | None = None, overrides: dict | None = None, by: str = "flow send_due",
             preflight: bool = False, distribute: bool = False) -> dict:
    interrupt.rearm()  # Prefect's engine has just put its own SIGTERM handler in place
    settings = load_settings(config, overrides)
    due = due_campaigns_task(settings)
    # One campaign's trouble (an aborted render, a paused relay) leaves the others to go.
    progress = RunProgress("send_due", len(due), "campaigns with chunks due")
    results = {cid: outcome(send_campaign(cid, config, overrides, by=by, preflight=preflight, distribute=distribute,
                                          return_state=True))
               for cid in progress.follow(due)}
    if interrupt.requested():
        raise Interrupted("the send of the due campaigns was interrupted")
    result_table("send_due", due_rows(results), "Each campaign with chunks due: outcomes, or why it was not sent")
    return results


def outcome(state: State) -> dict:
    result = state.result(raise_on_failure=False)
    return result if isinstance(result, dict) else {"error": str(result)}
