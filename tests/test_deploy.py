"""`mailflow deploy`: refused without a server; against a real one it registers prefect.yaml, and a worker runs a deployment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from mailflow.cli.prefect_env import running_server_url
from mailflow.tasks.core.warehouse import connect
from tests.support.browser import browser  # noqa: F401 - the fixture
from tests.support.deployments import GOLDEN, ROOT, from_api, listing
from tests.support.inputs import write_csv
from tests.support.prefect_server import PrefectServer, start_worker, stop_process

RUN_LIMIT = 300.0  # seconds: a bound on waiting for a flow run (worker poll, a process start, the flow), not a timing assumption
UI_LIMIT = 120_000  # milliseconds: a bound on the UI's page and its API calls on 2 busy cores


def server_file(home: Path, api_url: str, pid: int) -> Path:
    """What `mailflow server start` leaves: HOME/prefect/server.json."""
    path = home / "prefect" / "server.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"api_url": api_url, "pid": pid, "ui_url": api_url.removesuffix("/api"),
                                "started_at": "2026-12-02T00:00:00+00:00"}))
    return path


def mailflow(home: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`mailflow --home HOME ARGS` in a process of its own, with no Prefect API configured (nor a user's profile)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    clean |= {"PREFECT_HOME": str(home.parent / "client-prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
              "DO_NOT_TRACK": "1"} | (env or {})
    return subprocess.run([sys.executable, "-m", "mailflow.cli", "--home", str(home), *args], env=clean, capture_output=True,
                          text=True, timeout=600, stdin=subprocess.DEVNULL)


def test_the_home_server_counts_only_while_a_prefect_server_runs_there(tmp_path):
    """`mailflow deploy` asks running_server_url; its full behaviour (a live server found) is in tests/test_server.py."""
    home = tmp_path / "home"
    assert running_server_url(home) is None, "no file: no server"
    server_file(home, "http://127.0.0.1:1/api", os.getpid())
    assert running_server_url(home) is None, "a live process that is not a Prefect server is not the home's server"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    server_file(home, "http://127.0.0.1:1/api", dead.pid)
    assert running_server_url(home) is None, "a server that died left its file behind"
    server_file(home, "http://127.0.0.1:1/api", dead.pid)
    (home / "prefect" / "server.json").write_text("{not json")
    assert running_server_url(home) is None


def test_deploy_without_a_server_says_how_to_start_one(tmp_path):
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    done = mailflow(home, "deploy")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [
        "mailflow: no Prefect server to deploy to: start one with `mailflow server start` (or set PREFECT_API_URL)"]


def test_deploy_refuses_a_folder_without_prefect_yaml_naming_it(tmp_path):
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    done = mailflow(home, "deploy", "--project", str(tmp_path))
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1
    assert f"{tmp_path}/prefect.yaml: No such file or directory" in done.stderr


# --- against a real server, with a real worker ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    """A Prefect server on loopback, `mailflow deploy` against the home's server.json, and a worker on the pool."""
    base = tmp_path_factory.mktemp("deploy")
    home = base / "home"
    home.mkdir(mode=0o700)
    with PrefectServer(base / "server") as server:
        server_file(home, server.api_url, server.proc.pid)
        done = mailflow(home, "deploy")
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")} | {
            "MAILFLOW_HOME": str(home), "PREFECT_HOME": str(base / "worker-prefect")}
        worker = start_worker(server.api_url, "mailflow", base, env)
        try:
            yield {"server": server, "home": home, "deploy": done, "base": base}
        finally:
            stop_process(worker)


def api(server, method: str, path: str, body: dict | None = None):
    reply = httpx.request(method, f"{server.api_url}{path}", json=body, timeout=30)
    reply.raise_for_status()
    return reply.json()


def run_deployment(server, name: str, parameters: dict) -> dict:
    """Start a run of the deployment and wait, bounded, for a final state; the run as the API has it."""
    [deployment] = api(server, "POST", "/deployments/filter", {"deployments": {"name": {"any_": [name]}}})
    run = api(server, "POST", f"/deployments/{deployment['id']}/create_flow_run", {"parameters": parameters})
    deadline = time.monotonic() + RUN_LIMIT
    while True:
        run = api(server, "GET", f"/flow_runs/{run['id']}")
        if run["state"]["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            return run
        if time.monotonic() > deadline:
            pytest.fail(f"flow run of {name} still {run['state']['type']} after {RUN_LIMIT:.0f} s")
        time.sleep(1)


def golden_names() -> list[str]:
    return [line.split()[0] for line in GOLDEN.read_text().splitlines()]


def artifacts_of(server, flow_run_id: str) -> dict[str, dict]:
    found = api(server, "POST", "/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}})
    return {a["key"]: a for a in found}


@pytest.fixture(scope="module")
def ingested(deployed, tmp_path_factory):
    csv = write_csv(tmp_path_factory.mktemp("csv") / "people.csv",
                    "email,first_name\nann@example.com,Ann\nbo@example.org,Bo\nnot-an-address,X\n")
    run = run_deployment(deployed["server"], "ingest", {"paths": [str(csv)], "list_name": "news"})
    return run


@pytest.mark.integration
@pytest.mark.slow
def test_deploy_registers_every_deployment_of_prefect_yaml_with_the_home_server(deployed):
    done, server = deployed["deploy"], deployed["server"]
    order = golden_names()
    assert done.returncode == 0, done.stderr
    assert f"registered {len(order)} deployments with {server.api_url}:" in done.stdout
    assert "work pool mailflow: created (process)" in done.stdout
    assert "aggregate_engagement/aggregate-engagement  every 5 min" in done.stdout
    [pool] = api(server, "POST", "/work_pools/filter", {"work_pools": {"name": {"any_": ["mailflow"]}}})
    assert pool["type"] == "process"
    registered = {d["name"]: d for d in api(server, "POST", "/deployments/filter", {})}
    # What the server holds is what prefect.yaml says, line for line: `mailflow deploy` == `prefect deploy --all`.
    assert listing([from_api(registered[name]) for name in order]) == GOLDEN.read_text()
    pull = registered["ingest"]["pull_steps"]
    assert pull == [{"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT.resolve())}}]


@pytest.mark.integration
@pytest.mark.slow
def test_deploying_again_updates_in_place(deployed):
    server = deployed["server"]
    again = mailflow(deployed["home"], "--json", "deploy")
    assert again.returncode == 0, again.stderr
    shown = json.loads(again.stdout)
    assert shown["work_pools"] == {"mailflow": "exists (process)"} and shown["api_url"] == server.api_url
    assert [d["name"] for d in shown["deployments"]] == golden_names()
    assert len(api(server, "POST", "/deployments/filter", {})) == len(golden_names()), "the same deployments, updated: none added"


@pytest.mark.integration
@pytest.mark.slow
def test_a_worker_runs_the_ingest_deployment_into_the_warehouse_with_its_artifacts(deployed, ingested):
    assert ingested["state"]["type"] == "COMPLETED", ingested["state"]["message"]
    with connect(deployed["home"] / "mailflow.duckdb", read_only=True) as con:
        emails = sorted(r[0] for r in con.execute("SELECT email FROM subscribers").fetchall())
        quarantined = con.execute("SELECT count(*) FROM quarantine").fetchone()[0]
    assert emails == ["ann@example.com", "bo@example.org"] and quarantined == 1
    artifacts = artifacts_of(deployed["server"], ingested["id"])
    assert {k: a["type"] for k, a in artifacts.items()} == {
        "ingest-progress": "progress", "ingest-result": "table", "ingest-validation": "markdown"}
    assert artifacts["ingest-progress"]["data"] == 100.0
    [row] = json.loads(artifacts["ingest-result"]["data"])
    assert (row["rows_read"], row["new"], row["quarantined"]) == (3, 2, 1)


@pytest.mark.integration
@pytest.mark.slow
def test_the_prefect_ui_shows_the_artifacts_of_a_finished_run(deployed, ingested, browser, tmp_path):  # noqa: F811
    assert ingested["state"]["type"] == "COMPLETED"
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{deployed['server'].ui_url}/runs/flow-run/{ingested['id']}", timeout=UI_LIMIT)
    page.locator("li.p-tab#artifacts").click(timeout=UI_LIMIT)  # the run page opens on its logs
    for key in ("ingest-progress", "ingest-result", "ingest-validation"):
        page.get_by_text(key, exact=True).first.wait_for(timeout=UI_LIMIT)
    page.screenshot(path=str(tmp_path / "flow-run-artifacts.png"), full_page=True)
    page.get_by_text("ingest-result", exact=True).first.click(timeout=UI_LIMIT)
    page.get_by_text("people.csv").first.wait_for(timeout=UI_LIMIT)  # the table itself, drawn by the UI
    shot = tmp_path / "ingest-result.png"
    page.screenshot(path=str(shot), full_page=True)
    assert "/artifacts/artifact/" in page.url and page.get_by_text("quarantined").count() >= 1
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
