"""The flows under Prefect's test harness: the demo loop end to end, twice."""

import mailbox

import pytest

from flows.demo import REJECTED_DOMAIN, demo
from mailflow import SAMPLES_DIR
from tasks.warehouse import connect

pytestmark = [pytest.mark.flow, pytest.mark.integration]


def test_demo_runs_the_whole_loop_and_a_rerun_duplicates_nothing(prefect_harness, home):
    first = demo(overrides={"home": str(home)})
    total = first["report"]["total"]
    rejected = sum(1 for line in (SAMPLES_DIR / "subscribers.csv").read_text().splitlines() if f"@{REJECTED_DOMAIN}," in line)
    assert total["audience"] == first["planned"]["audience_size"] > 2000
    assert total["bounced"] == rejected > 0
    assert total["delivered"] + total["bounced"] == total["audience"] and total["pending"] == 0
    assert len(mailbox.Maildir(str(home / "maildir"), create=False)) == total["delivered"]
    assert first["aggregated"]["deliveries"] == total["audience"]

    second = demo(overrides={"home": str(home)})
    assert second["ingested"][0]["already_ingested"] and second["planned"]["already_planned"]
    assert second["sent"].get("delivered", 0) == 0 and second["sent"]["skipped"] == total["audience"]
    assert second["report"]["total"] == total
    assert len(mailbox.Maildir(str(home / "maildir"), create=False)) == total["delivered"]
    with connect(home / "mailflow.duckdb", read_only=True) as con:
        subscribers, deliveries, distinct = con.execute(
            "SELECT (SELECT count(*) FROM subscribers), count(*), count(DISTINCT subscriber_id) FROM deliveries"
        ).fetchone()
        bounced_domains = con.execute(
            "SELECT DISTINCT split_part(s.email, '@', 2) FROM deliveries d JOIN subscribers s USING (subscriber_id) "
            "WHERE d.status = 'bounced'").fetchall()
    assert deliveries == distinct == total["audience"]
    assert subscribers == first["ingested"][0]["accepted"]
    assert bounced_domains == [(REJECTED_DOMAIN,)]


def test_ingest_flow_records_validation_as_an_artifact(prefect_harness, home):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.ingest import ingest

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
