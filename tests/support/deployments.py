"""The deployment list as one line per deployment, from prefect.yaml or from a server's API: the golden file compares both."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).parent.parent.parent
GOLDEN = ROOT / "tests" / "data" / "golden" / "deployments.txt"


def yaml_deployments() -> list[dict]:
    return yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]


def from_yaml(d: dict) -> dict:
    limit = d.get("concurrency_limit") or {}
    return {"name": d["name"], "entrypoint": d["entrypoint"], "intervals": [s["interval"] for s in d.get("schedules", [])],
            "limit": limit.get("limit"), "strategy": limit.get("collision_strategy"), "pool": d["work_pool"]["name"],
            "queue": d["work_pool"]["work_queue_name"], "parameters": d.get("parameters", {})}


def from_api(d: dict) -> dict:
    """A deployment as the REST API returns it (POST /api/deployments/filter)."""
    limit = d.get("global_concurrency_limit") or {}
    return {"name": d["name"], "entrypoint": d["entrypoint"],
            "intervals": [int(s["schedule"]["interval"]) for s in d["schedules"]], "limit": limit.get("limit"),
            "strategy": (d.get("concurrency_options") or {}).get("collision_strategy"), "pool": d["work_pool_name"],
            "queue": d["work_queue_name"], "parameters": d["parameters"]}


def listing(rows: list[dict]) -> str:
    lines = []
    for r in rows:
        every = ", ".join(f"every {s // 60} min" for s in r["intervals"]) or "on demand"
        lines.append(f"{r['name']:<21} {r['entrypoint']:<54} {every:<14} limit {r['limit'] or '-'} {r['strategy'] or '-':<10} "
                     f"pool {r['pool']}/{r['queue']}  parameters {r['parameters']}")
    return "\n".join(lines) + "\n"
