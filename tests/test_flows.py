"""The flows under Prefect's test harness: the demo loop end to end, twice."""

import mailbox

import pytest

from mailflow import SAMPLES_DIR
from mailflow.flows.demo import REJECTED_DOMAIN, demo
from mailflow.tasks.core.warehouse import connect

pytestmark = [pytest.mark.flow, pytest.mark.integration]


def test_demo_runs_the_whole_loop_and_a_rerun_duplicates_nothing(prefect_harness, home):
    first = demo(overrides={"home": str(home)})
    total = first["report"]["total"]
    rejected = sum(1 for line in (SAMPLES_DIR / "subscribers.csv").read_text().splitlines() if f"@{REJECTED_DOMAIN}," in line)
    mailed, rows = first["planned"]["audience_size"], {v["variant"]: v for v in first["report"]["variants"]}
    assert set(rows) == {"A", "B", "holdout"}, "the demo is an A/B test with a holdout"
    assert rows["A"]["sent"] > 1000 and rows["B"]["sent"] > 1000 and rows["holdout"]["sent"] == 0
    assert total["audience"] == mailed + first["planned"]["holdout"] and mailed > 2000
    assert 0 < total["bounced"] <= rejected  # but those of the holdout
    assert total["delivered"] + total["bounced"] == mailed and total["pending"] == 0
    assert len(mailbox.Maildir(str(home / "maildir"), create=False)) == total["delivered"]
    assert first["aggregated"]["deliveries"] == mailed
    engaged, engagement = first["engaged"], {v["variant"]: v for v in first["report"]["engagement"]["variants"]}
    assert set(engagement) == {"A", "B"} and sum(engaged["unsubscribed"].values()) == 3
    for variant, row in engagement.items():  # the report counts what the demo's readers fetched from its service
        assert (row["unique_opens"], row["total_opens"], row["unique_clicks"], row["unsubscribes"]) == (
            engaged["opened"][variant], engaged["opens"][variant], engaged["clicked"][variant],
            engaged["unsubscribed"].get(variant, 0))
    decision = first["ab"]  # the demo ends with its A/B decision: test and holdout take everyone, no remainder
    assert decision["stored"] and decision["final"] and decision["remainder_recipients"] == 0
    assert {v["variant"]: v["successes"] for v in decision["variants"]} == engaged["clicked"]
    assert decision["holdout"]["holdout"]["engaged"] == 0 < decision["holdout"]["lift"]

    # late.example accepts, then bounces with a DSN into the demo's bounce Maildir, fetched back before aggregate
    with connect(home / "mailflow.duckdb", read_only=True) as con:
        late = con.execute("SELECT count(*) FROM deliveries AS d JOIN subscribers AS s USING (subscriber_id) "
                           "WHERE s.email LIKE '%@late.example' AND d.status = 'delivered'").fetchone()[0]
        mailbox_bounces = con.execute("SELECT count(*) FROM events WHERE type = 'bounce' AND kind = 'hard' "
                                      "AND subscriber_id IS NOT NULL").fetchone()[0]
    assert late > 0 and first["bounces"]["kinds"]["hard"] == mailbox_bounces == late and first["bounces"]["unmapped"] == 0

    second = demo(overrides={"home": str(home)})
    assert second["bounces"]["fetched"] == 0, "each bounce message is fetched once"
    assert second["ingested"][0]["already_ingested"] and second["planned"]["already_planned"]
    assert second["sent"].get("delivered", 0) == 0 and second["sent"]["skipped"] == mailed
    assert second["report"]["total"] == total
    assert second["engaged"] == {k: {} for k in engaged}, "the messages read are filed as read"
    assert second["report"]["engagement"] == first["report"]["engagement"]
    assert second["ab"]["already_decided"] and second["ab"]["attempt"] == decision["attempt"] == 1
    assert len(mailbox.Maildir(str(home / "maildir"), create=False)) == total["delivered"]
    with connect(home / "mailflow.duckdb", read_only=True) as con:
        subscribers, deliveries, distinct = con.execute(
            "SELECT (SELECT count(*) FROM subscribers), count(*), count(DISTINCT subscriber_id) FROM deliveries"
        ).fetchone()
        bounced_domains = con.execute(
            "SELECT DISTINCT split_part(s.email, '@', 2) FROM deliveries d JOIN subscribers s USING (subscriber_id) "
            "WHERE d.status = 'bounced'").fetchall()
    assert deliveries == distinct == mailed
    assert subscribers == first["ingested"][0]["accepted"]
    assert bounced_domains == [(REJECTED_DOMAIN,)]


def test_ingest_flow_records_validation_as_an_artifact(prefect_harness, home):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from mailflow.flows.ingest import ingest

    results = ingest([str(SAMPLES_DIR / "subscribers.csv")], list_name="flow-test", overrides={"home": str(home)})
    assert results[0]["rows_read"] == 3003 and results[0]["validation"][0]["success"] is False
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["ingest-validation"])))
    assert any("expect_column_values_to_match_regex" in a.data and "flow-test" not in a.data for a in artifacts)
    with connect(home / "mailflow.duckdb", read_only=True) as con:
        assert con.execute("SELECT count(*) FROM validation_runs").fetchone()[0] == 1


def test_send_flow_reports_progress_and_outcomes_as_artifacts(prefect_harness, home):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    demo(overrides={"home": str(home)})
    with get_client(sync_client=True) as client:
        progress = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=["send-demo-newsletter-progress"])))
        table = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=["send-demo-newsletter-outcomes"])))
    assert progress and float(progress[-1].data) == 100.0
    assert table and '"delivered"' in str(table[-1].data)


def test_global_rate_limit_is_created_by_init_and_taken_in_batches(prefect_harness, home):
    import asyncio

    from prefect.client.orchestration import get_client

    from mailflow.settings import load_settings
    from mailflow.tasks.deliver.tasks import RATE_LIMIT, ensure_rate_limit, prefect_rate_limit

    # A very slow decay, so the slots taken are still held when read back.
    settings = load_settings(overrides={"home": str(home), "send": {"rate": 0.01, "rate_batch": 40}}, environ={})
    assert "0.01 msgs/s" in ensure_rate_limit(settings)
    asyncio.run(prefect_rate_limit()(40))
    with get_client(sync_client=True) as client:
        limit = client.read_global_concurrency_limit_by_name(RATE_LIMIT)
    assert (limit.limit, limit.slot_decay_per_second) == (40, 0.01)
    assert limit.active_slots >= 39


def test_send_and_retry_flows_with_the_global_rate_deferred_then_delivered(prefect_harness, home, tmp_path, monkeypatch):
    from mailflow.flows.plan_campaign import plan_campaign
    from mailflow.flows.retry_deferred import retry_deferred
    from mailflow.flows.send_campaign import send_campaign
    from mailflow.settings import load_settings
    from mailflow.tasks.deliver.tasks import ensure_rate_limit
    from mailflow.tasks.demo.receiver import Fault, Receiver
    from mailflow.tasks.ingest.ingest import ingest_file
    from tests.support.inputs import write_csv

    emails = [f"u{i}@example.com" for i in range(30)] + [f"b{i}@busy.example" for i in range(5)]
    with connect(home / "mailflow.duckdb") as con:
        ingest_file(con, write_csv(tmp_path / "s.csv", "email\n" + "\n".join(emails) + "\n"))
    monkeypatch.setenv("MAILFLOW_TRACKING__SECRET", "s")  # the flows and their worker processes read it there
    base = {"home": str(home), "send": {"rate": 1000, "rate_batch": 20, "retry_first": 0, "chunk_size": 10},
            "tracking": {"base_url": "https://t.example"}}
    ensure_rate_limit(load_settings(overrides=base, environ={}))
    campaign = tmp_path / "c.yaml"
    campaign.write_text("name: retry-news\nfrom: News <news@example.com>\ntemplate: newsletter\nsubject: Hi\n")
    with Receiver(record=True, faults={"busy.example": Fault("RCPT", "451 4.3.0 busy")}) as rx:
        overrides = {**base, "smtp": {"pools": {"default": {"relays": [f"127.0.0.1:{rx.port}"]}}}}
        planned = plan_campaign(str(campaign), overrides=overrides)
        sent = send_campaign(planned["campaign_id"], overrides=overrides)
    assert (sent["delivered"], sent["deferred"]) == (30, 5)
    assert sent["state"] == "sending" and sent["progress"]["deferred"] == 5, "recipients deferred: not sent"
    with Receiver(record=True) as rx:
        overrides = {**base, "smtp": {"pools": {"default": {"relays": [f"127.0.0.1:{rx.port}"]}}}}
        retried = retry_deferred(overrides=overrides)
        assert sorted(r for m in rx.received for r in m.recipients) == sorted(emails[30:])
    assert retried["delivered"] == 5 and retried["chunks"] == 4  # the busy domain was dealt across all 4 chunks
    assert retried["campaigns"] == {"retry-news": "sent"}, "the last deferral settled: the campaign is sent"
    assert retry_deferred(overrides=overrides) == {"chunks": 0, "campaigns": {}}


def test_a_campaign_with_one_non_ascii_recipient_sends_the_others(prefect_harness, home, tmp_path, monkeypatch):
    from mailflow.flows.plan_campaign import plan_campaign
    from mailflow.flows.send_campaign import send_campaign
    from mailflow.tasks.demo.receiver import Receiver
    from mailflow.tasks.ingest.ingest import ingest_file
    from tests.support.inputs import write_csv

    emails = ["josé@example.com"] + [f"u{i}@example.com" for i in range(12)]  # first: in the dry run's sample
    with connect(home / "mailflow.duckdb") as con:
        ingest_file(con, write_csv(tmp_path / "s.csv", "email,first_name\n" + "".join(f"{e},N\n" for e in emails)))
    campaign = tmp_path / "c.yaml"
    campaign.write_text("name: utf8-news\nfrom: News <news@example.com>\ntemplate: newsletter\nsubject: Hi\n")
    monkeypatch.setenv("MAILFLOW_TRACKING__SECRET", "s")  # secrets never travel as flow parameters
    base = {"home": str(home), "tracking": {"base_url": "https://t.example"}}
    with Receiver(record=True, server_options={"enable_SMTPUTF8": False}) as rx:
        overrides = {**base, "smtp": {"pools": {"default": {"relays": [f"127.0.0.1:{rx.port}"]}}}}
        planned = plan_campaign(str(campaign), overrides=overrides)
        sent = send_campaign(planned["campaign_id"], overrides=overrides)
    assert (sent["delivered"], sent["failed"]) == (12, 1)
    assert sorted(r for m in rx.received for r in m.recipients) == sorted(emails[1:])


def read_artifacts(key: str, flow_run_id=None):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    flow_run = ArtifactFilterFlowRunId(any_=[flow_run_id]) if flow_run_id else None
    with get_client(sync_client=True) as client:
        return client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]), flow_run_id=flow_run))


def test_send_flow_keeps_a_live_table_by_variant_and_provider(prefect_harness, settings, receiver, con, tmp_path, monkeypatch):
    import json

    import mailflow.flows.progress
    from mailflow.flows.send_campaign import send_campaign
    from mailflow.tasks.ingest.ingest import IngestOptions, ingest_file
    from mailflow.tasks.plan.audience import plan
    from mailflow.tasks.plan.campaign import CampaignSpec
    from tests.support.inputs import write_csv

    emails = [f"p{i}@example.com" for i in range(50)] + [f"g{i}@gmail.com" for i in range(12)] + [f"x{i}@gone.example" for i in range(5)]
    ingest_file(con, write_csv(tmp_path / "p.csv", "email\n" + "\n".join(emails) + "\n"), IngestOptions(list_name="live"))
    spec = CampaignSpec(name="Live", campaign_id="live-table", from_addr="News <news@example.com>",
                        subject="Hi", template="newsletter", lists=("live",))
    assert plan(con, settings.home, spec, 50).chunk_count == 2
    monkeypatch.setattr(mailflow.flows.progress, "POLL_SECONDS", 0.05)  # refresh many times while the chunks run
    monkeypatch.setenv("MAILFLOW_TRACKING__SECRET", "s")  # the flow and its worker processes read it there
    overrides = {"home": str(settings.home), "send": {"chunk_size": 50}, "tracking": {"base_url": "https://t.example"},
                 "smtp": {"pools": {"default": {"relays": [f"127.0.0.1:{receiver.port}"], "connections": 4}}}}
    state = send_campaign("live-table", overrides=overrides, return_state=True)
    sent = state.result()
    assert sent["delivered"] == 62 and sent["bounced"] == 5

    run_id = state.state_details.flow_run_id
    live = read_artifacts("send-live-table-live", run_id)
    assert len(live) == 1, "the live table is updated in place, not versioned per poll"
    rows = json.loads(live[0].data)
    total = rows[-1]
    assert (total["by"], total["sent"], total["delivered"], total["bounced"], total["in_doubt"]) == ("total", 67, 62, 5, 0)
    assert [(r["name"], r["sent"], r["delivered"]) for r in rows if r["by"] == "variant"] == [("A", 67, 62)]
    providers = {r["name"]: r for r in rows if r["by"] == "provider"}
    assert {name: (r["delivered"], r["bounced"]) for name, r in providers.items()} == {"gmail": (12, 0), "other": (50, 5)}
    progress = read_artifacts("send-live-table-progress", run_id)
    assert len(progress) == 1 and float(progress[0].data) == 100.0
    assert progress[0].description.startswith("67 of 67 recipients: 62 delivered, 0 deferred, 5 bounced")


def test_live_artifacts_follow_the_ledger_between_refreshes(prefect_harness, home):
    import json

    from prefect import flow

    from mailflow.flows.progress import LiveArtifacts
    from mailflow.tasks.files.ledger import LedgerRecord, LedgerWriter, ledger_path
    from mailflow.tasks.files.tally import ledger_tally

    def rec(sid, status):
        return LedgerRecord("between", sid, "A", 0, status, None, None, "", 1, provider="yahoo")

    @flow
    def follow() -> tuple:  # artifacts belong to a flow run
        with LedgerWriter(ledger_path(home, "between", 0)) as ledger:
            for sid in range(1, 5):
                ledger.mark_in_flight(rec(sid, "in_flight"))
            live = LiveArtifacts("between", ledger_tally(home, "between"), audience=8)
            first = json.loads(read_artifacts("send-between-live")[-1].data)[-1]
            for sid in range(1, 5):
                ledger.append(rec(sid, "delivered"))
            live.refresh()
        return live.table, first

    table, first = follow()
    assert (first["sent"], first["in_doubt"], first["delivered"]) == (4, 4, 0)
    artifacts = read_artifacts("send-between-live")
    assert len(artifacts) == 1 and artifacts[0].id == table
    latest = json.loads(artifacts[0].data)
    assert [(r["by"], r["name"], r["delivered"], r["in_doubt"]) for r in latest] == [
        ("variant", "A", 4, 0), ("provider", "yahoo", 4, 0), ("total", "all", 4, 0)]
    progress = read_artifacts("send-between-progress")
    assert len(progress) == 1 and float(progress[0].data) == 50.0


def test_chunks_are_submitted_as_workers_free_up_and_none_after_a_stop_request():
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from mailflow.flows.progress import in_window

    submitted: list[int] = []
    done: list[int] = []

    def submit(n):
        assert len(submitted) - len(done) < 2, "at most two chunks submitted and not yet finished"
        submitted.append(n)
        return pool.submit(lambda: n)

    with ThreadPoolExecutor(8) as pool:
        for n in in_window(submit, range(10), 2, lambda: False, poll_seconds=0.01):
            done.append(n)
        assert sorted(done) == list(range(10))

        submitted.clear(), done.clear()
        stop = threading.Event()
        for n in in_window(submit, range(10), 2, stop.is_set, poll_seconds=0.01):
            done.append(n)
            stop.set()  # a stop request once the first chunk has finished
    assert submitted == [0, 1], "no chunk is submitted once a stop is requested"
    assert sorted(done) == [0, 1], "the chunks already running finish and are counted"
