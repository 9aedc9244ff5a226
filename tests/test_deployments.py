"""prefect.yaml: every deployment points at a flow that exists and accepts its parameters."""

import inspect
from pathlib import Path

import yaml
from prefect import Flow
from prefect.flows import load_flow_from_entrypoint

ROOT = Path(__file__).parent.parent
EXPECTED = ["ingest", "plan-campaign", "send-campaign", "retry-deferred", "aggregate-engagement", "process-bounces",
            "send-chunk", "send-due", "pick-ab-winner", "demo"]  # every flow the README says is scheduled


def test_deployments_match_the_flows():
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    assert [d["name"] for d in spec["deployments"]] == EXPECTED
    for deployment in spec["deployments"]:
        # As a worker loads it: the file run by its path, not imported as a top-level `flows` package.
        flow = load_flow_from_entrypoint(str(ROOT / deployment["entrypoint"]), use_placeholder_flow=False)
        assert isinstance(flow, Flow) and flow.name.replace("_", "-") == deployment["name"], deployment["name"]
        accepted = inspect.signature(flow.fn).parameters
        assert set(deployment.get("parameters", {})) <= set(accepted), deployment["name"]
