"""prefect.yaml: every deployment points at a flow that exists and accepts its parameters."""

import importlib
import inspect
from pathlib import Path

import yaml
from prefect import Flow

ROOT = Path(__file__).parent.parent
EXPECTED = ["ingest", "plan-campaign", "send-campaign", "retry-deferred", "aggregate-engagement", "demo"]


def test_deployments_match_the_flows():
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    assert [d["name"] for d in spec["deployments"]] == EXPECTED
    for deployment in spec["deployments"]:
        path, name = deployment["entrypoint"].split(":")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        flow = getattr(module, name)
        assert isinstance(flow, Flow), deployment["name"]
        accepted = inspect.signature(flow.fn).parameters
        assert set(deployment.get("parameters", {})) <= set(accepted), deployment["name"]
