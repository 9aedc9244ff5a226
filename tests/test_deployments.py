"""prefect.yaml: every deployment points at a flow that exists and accepts its parameters; the list is a golden file."""

import inspect
import os

import yaml
from prefect import Flow
from prefect.flows import load_flow_from_entrypoint

from mailflow.tasks.deliver.tasks import RATE_LIMIT
from tests.support.deployments import GOLDEN, ROOT, from_yaml, listing, yaml_deployments

EXPECTED = ["ingest", "plan-campaign", "send-campaign", "retry-deferred", "aggregate-engagement", "process-bounces",
            "send-chunk", "send-due", "pick-ab-winner", "demo"]  # every flow the README says is scheduled


def test_deployments_match_the_flows():
    assert [d["name"] for d in yaml_deployments()] == EXPECTED
    for deployment in yaml_deployments():
        # As a worker loads it: the file run by its path, not imported as a top-level `flows` package.
        flow = load_flow_from_entrypoint(str(ROOT / deployment["entrypoint"]), use_placeholder_flow=False)
        assert isinstance(flow, Flow) and flow.name.replace("_", "-") == deployment["name"], deployment["name"]
        accepted = inspect.signature(flow.fn).parameters
        assert set(deployment.get("parameters", {})) <= set(accepted), deployment["name"]


def test_the_deployment_list_is_its_golden_file():
    # A change to what is deployed shows up as a diff of tests/data/golden/deployments.txt; accept one with
    # MAILFLOW_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_deployments.py -k golden
    text = listing([from_yaml(d) for d in yaml_deployments()])
    if os.environ.get("MAILFLOW_UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text(), "the deployments changed: check them, then accept with MAILFLOW_UPDATE_GOLDEN=1"


def test_schedules_are_the_ones_the_operations_need():
    every = {d["name"]: [s["interval"] for s in d.get("schedules", [])] for d in yaml_deployments()}
    assert every["aggregate-engagement"] == [300] and every["process-bounces"] == [600]
    assert every["retry-deferred"] == every["send-due"] == every["pick-ab-winner"] == [300]
    assert not every["ingest"] and not every["plan-campaign"] and not every["send-campaign"], "run on demand"
    scheduled = [d for d in yaml_deployments() if d.get("schedules")]
    assert all(d["concurrency_limit"] == {"limit": 1, "collision_strategy": "CANCEL_NEW"} for d in scheduled), \
        "a scheduled run never piles up behind a slow one"


def test_the_limits_named_in_prefect_yaml_are_the_ones_the_send_stage_takes():
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    assert [limit["name"] for limit in spec["definitions"]["concurrency_limits"]] == [RATE_LIMIT]
    assert {d["work_pool"]["name"] for d in spec["deployments"]} == {"mailflow"}
