"""What a flow run shows in the Prefect UI: a progress artifact and a result table per run; a failed send names its chunk and why."""

from __future__ import annotations

import json
import mailbox
import re
from pathlib import Path

import pytest

from mailflow.errors import Interrupted, MailflowError, NeedsAttention
from mailflow.tasks.core.run_tables import due_rows, ingest_rows, plan_rows
from mailflow.tasks.demo.receiver import free_port
from mailflow.tasks.files.ledger import ledger_path
from mailflow.tasks.send.failure import chunk_failure, chunk_label
from tests.support.commands import planned_campaign
from tests.support.inputs import write_csv


def test_a_failed_chunk_is_named_first_and_keeps_the_class_the_command_line_branches_on():
    label = chunk_label("news", Path("/h/campaigns/news/chunk-00003.parquet"))
    assert label == "chunk-00003 of campaign 'news'"
    paused = chunk_failure(label, NeedsAttention("campaign 'news' paused: 5 recipients in a row failed at relay x"))
    assert type(paused) is NeedsAttention
    assert str(paused) == "chunk-00003 of campaign 'news': campaign 'news' paused: 5 recipients in a row failed at relay x"
    assert type(chunk_failure(label, MailflowError("bad key"))) is MailflowError
    bug = chunk_failure(label, KeyError("email"))
    assert type(bug) is NeedsAttention and str(bug) == "chunk-00003 of campaign 'news': KeyError: 'email'"
    stop = Interrupted("stopped")
    assert chunk_failure(label, stop) is stop, "a stop request is no failure of the chunk"


def test_result_rows_read_as_tables():
    ingested = {"source": "a.csv", "rows_read": 3, "accepted": 2, "updated": 0, "unchanged": 0, "quarantined": 1,
                "already_ingested": False, "seconds": 0.5}
    assert ingest_rows([ingested]) == [{"file": "a.csv", "rows_read": 3, "new": 2, "updated": 0, "unchanged": 0,
                                        "quarantined": 1, "note": "0.5 s"}]
    planned = {"campaign_id": "news", "status": "planned", "matched": 10, "excluded": {"suppressed": 2},
               "audience_size": 8, "chunk_count": 1, "variants": {"A": 4, "B": 4}}
    assert [(r["measure"], r["value"]) for r in plan_rows(planned)] == [
        ("campaign", "news"), ("state", "planned"), ("matched", 10), ("excluded: suppressed", 2), ("recipients", 8),
        ("chunks", 1), ("group A", 4), ("group B", 4)]
    rows = due_rows({"a": {"delivered": 3, "state": "sent"}, "b": {"error": "aborted"}})
    assert [(r["campaign"], r["delivered"], r["state"]) for r in rows] == [("a", 3, "sent"), ("b", 0, "not sent: aborted")]


# --- under Prefect's test harness -------------------------------------------------------------------------------------


def run_artifacts(flow_run_id) -> dict:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
    return {a.key: a for a in found}


def flow_run(flow_run_id):
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(flow_run_id)


@pytest.mark.flow
@pytest.mark.integration
def test_a_send_failing_at_a_dead_relay_names_the_chunk_and_the_reason_in_its_state_and_an_artifact(
        prefect_harness, tmp_path, monkeypatch):
    from mailflow.flows.send_campaign import send_campaign

    home, _ = planned_campaign(tmp_path, recipients=60, chunk_size=20)
    monkeypatch.setenv("MAILFLOW_TRACKING__SECRET", "s")  # the flow and its worker processes read it there
    dead = f"127.0.0.1:{free_port()}"  # nothing listens: every recipient is refused at the relay
    overrides = {"home": str(home), "tracking": {"base_url": "https://t.example"}, "send": {"error_budget": 5},
                 "smtp": {"pools": {"default": {"relays": [dead], "connections": 1}}}}
    state = send_campaign("stopped", overrides=overrides, return_state=True)
    assert state.is_failed()
    message = flow_run(state.state_details.flow_run_id).state.message
    found = re.search(r"(chunk-(\d{5})) of campaign 'stopped': campaign 'stopped' stopped sending \(still `sending`, not paused\): "
                      r"5 recipients in a row failed at "
                      rf"relay {re.escape(dead)}", message)
    assert found, message
    ledger = ledger_path(home, "stopped", int(found.group(2)))
    assert {json.loads(line)["status"] for line in ledger.read_text().splitlines()} >= {"deferred"}, "the chunk named is one that failed"
    failure = run_artifacts(state.state_details.flow_run_id)["send-stopped-failure"]
    assert failure.type == "markdown" and f"## Failed: {found.group(1)} of campaign 'stopped'" in failure.data
    assert "not paused): 5 recipients in a row failed at relay" in failure.data


@pytest.mark.flow
@pytest.mark.integration
def test_every_flow_run_shows_its_progress_and_a_result_table(prefect_harness, home, tmp_path, receiver, monkeypatch):
    from mailflow.flows.aggregate_engagement import aggregate_engagement
    from mailflow.flows.ingest import ingest
    from mailflow.flows.pick_ab_winner import pick_ab_winner
    from mailflow.flows.plan_campaign import plan_campaign
    from mailflow.flows.process_bounces import process_bounces
    from mailflow.flows.retry_deferred import retry_deferred
    from mailflow.flows.send_due import send_due

    monkeypatch.setenv("MAILFLOW_TRACKING__SECRET", "s")
    bounces = mailbox.Maildir(tmp_path / "bounces", create=True)  # empty: nothing came back
    overrides = {"home": str(home), "tracking": {"base_url": "https://t.example"}, "bounces": {"maildir": bounces._path},
                 "smtp": {"pools": {"default": {"relays": [f"127.0.0.1:{receiver.port}"]}}}}
    csv = write_csv(tmp_path / "s.csv", "email\n" + "".join(f"u{i}@example.com\n" for i in range(6)) + "x@gone.example\n")
    campaign = tmp_path / "c.yaml"
    campaign.write_text("name: shown\nfrom: News <news@example.com>\nlists: [news]\ntemplate: newsletter\nsubject: Hi\n")
    runs = {
        "ingest": ingest([str(csv)], list_name="news", overrides=overrides, return_state=True),
        "plan-campaign": plan_campaign(str(campaign), overrides=overrides, return_state=True),
        "send-due": send_due(overrides=overrides, return_state=True),
        "retry-deferred": retry_deferred(overrides=overrides, return_state=True),
        "aggregate-engagement": aggregate_engagement(overrides=overrides, return_state=True),
        "process-bounces": process_bounces(overrides=overrides, return_state=True),
        "pick-ab-winner": pick_ab_winner(overrides=overrides, return_state=True),
    }
    shown = {}
    for name, state in runs.items():
        assert state.is_completed(), (name, state.message)
        artifacts = run_artifacts(state.state_details.flow_run_id)
        assert artifacts[f"{name}-progress"].type == "progress" and float(artifacts[f"{name}-progress"].data) == 100.0, name
        assert artifacts[f"{name}-result"].type == "table", name
        shown[name] = json.loads(artifacts[f"{name}-result"].data)
    assert shown["ingest"][0]["new"] == 7
    assert {r["measure"]: r["value"] for r in shown["plan-campaign"]}["recipients"] == 7
    assert [(r["campaign"], r["delivered"], r["bounced"]) for r in shown["send-due"]] == [("shown", 6, 1)]
    assert shown["retry-deferred"][0]["chunks"] == 0
    assert {r["measure"]: r["value"] for r in shown["aggregate-engagement"]}["deliveries in the warehouse"] == 7
    assert {r["measure"]: r["value"] for r in shown["process-bounces"]}["messages fetched"] == 0
    assert shown["pick-ab-winner"] == [{"result": "nothing to do"}], "no A/B test: the table says so"


@pytest.mark.flow
@pytest.mark.integration
def test_a_send_stopped_by_a_template_error_names_the_chunk_it_rendered_from(prefect_harness, home, tmp_path, receiver,
                                                                             monkeypatch):
    from mailflow.flows.send_campaign import send_campaign
    from mailflow.tasks.core.warehouse import connect
    from mailflow.tasks.ingest.ingest import IngestOptions, ingest_file
    from mailflow.tasks.plan.audience import plan
    from mailflow.tasks.plan.campaign import load_campaign

    campaign = tmp_path / "broken.yaml"  # planned without the plan's own template check, as a file edited since would be
    campaign.write_text("name: broken\nfrom: News <news@example.com>\nlists: [news]\ntemplate: newsletter\n"
                        "subject: '{{ subscriber.no_such_field.upper() }}'\n")
    with connect(home / "mailflow.duckdb") as con:
        ingest_file(con, write_csv(tmp_path / "s.csv", "email\na@example.com\nb@example.com\n"), IngestOptions(list_name="news"))
        plan(con, home, load_campaign(campaign), 10)
    monkeypatch.setenv("MAILFLOW_TRACKING__SECRET", "s")
    overrides = {"home": str(home), "tracking": {"base_url": "https://t.example"},
                 "smtp": {"pools": {"default": {"relays": [f"127.0.0.1:{receiver.port}"]}}}}
    state = send_campaign("broken", overrides=overrides, return_state=True)
    assert state.is_failed() and not receiver.received, "nothing went out"
    message = flow_run(state.state_details.flow_run_id).state.message
    assert re.search(r"NeedsAttention: chunk-00000 of campaign 'broken': campaign 'broken' not sent: subscriber \d+ failed "
                     r"the dry-run render \(.*Undefined", message), message
    failure = run_artifacts(state.state_details.flow_run_id)["send-broken-failure"]
    assert "## Failed: chunk-00000 of campaign 'broken'" in failure.data and "failed the dry-run render" in failure.data
