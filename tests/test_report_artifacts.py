"""After each aggregate, a Markdown report artifact per campaign the run touched (under Prefect's test harness)."""

import pytest

from mailflow.flows.aggregate_engagement import aggregate_engagement
from tests.support.report_campaign import planned_campaign, write_logs

pytestmark = [pytest.mark.flow]


def artifacts(key: str) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        return client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))


def test_aggregate_publishes_the_report_of_each_campaign_it_loaded_and_none_when_nothing_is_new(prefect_harness, con, home, tmp_path):
    write_logs(home, planned_campaign(con, home, tmp_path))
    con.close()
    first = aggregate_engagement(overrides={"home": str(home)})
    assert first["reports"] == ["report-news"] and first["deliveries"] == 40
    [artifact] = artifacts("report-news")
    assert artifact.type == "markdown" and artifact.data.startswith("## Campaign News (news) — ")
    assert "| opened | 4 | 4 |" in artifact.data, "the load flags no machine here: all 4 openers count as human"
    assert "\n### Engagement per variant\n" in artifact.data and "| SMTP reply while sending | 1 | 0 | 1 |" in artifact.data
    again = aggregate_engagement(overrides={"home": str(home)})
    assert again["reports"] == [] and len(artifacts("report-news")) == 1
