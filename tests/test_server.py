"""`mailflow server`: the home's Prefect server starts once, later commands (and their worker processes) report to it,
a stale state or a busy port is one line, and the commands that run no flow never import Prefect."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections import Counter

import pytest

from mailflow import prefect_server
from mailflow.cli.prefect_env import running_server_url
from tests.support.commands import TEMPORARY_SERVER as TEMPORARY
from tests.support.commands import finish, mailflow_send, planned_campaign
from tests.support.home_server import free_port, home_server, runs


def mailflow(home, *args, env=None):
    # As a user runs it: without the test session's Prefect settings, under the usual umask.
    env = env or {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_LOGGING", "PREFECT_API_URL"))}
    return subprocess.run([sys.executable, "-m", "mailflow.cli", "--home", str(home), *args], capture_output=True,
                          text=True, timeout=300, env=env, umask=0o022)


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def ended(pid: int) -> bool:
    """Gone, or a zombie (its parent, `mailflow server start`, exited; this machine's init reaps late)."""
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.mark.integration
@pytest.mark.slow
def test_start_status_stop_and_a_flow_command_reports_to_the_home_server(tmp_path):
    home, port = tmp_path / "h", free_port()
    try:
        started = mailflow(home, "--json", "server", "start", "--port", str(port))
        assert started.returncode == 0, started.stderr
        state = json.loads(started.stdout)
        assert state["started"] and state["api_url"] == f"http://127.0.0.1:{port}/api"
        assert json.loads((home / "prefect" / "server.json").read_text())["pid"] == state["pid"]
        assert (home / "prefect" / "server.log").exists()

        again = mailflow(home, "server", "start", "--port", str(port))
        assert again.returncode == 0 and "already running" in again.stdout
        status = mailflow(home, "--json", "server", "status")
        assert status.returncode == 0
        assert json.loads(status.stdout) | {"uptime_seconds": 0} == {
            "running": True, "healthy": True, "pid": state["pid"], "api_url": state["api_url"], "ui_url": state["ui_url"],
            "started_at": state["started_at"], "uptime_seconds": 0}
        assert running_server_url(home) == state["api_url"]

        aggregated = mailflow(home, "aggregate")
        assert aggregated.returncode == 0, aggregated.stderr
        assert TEMPORARY not in aggregated.stderr
        assert [r["name"] for r in runs(state["api_url"])] != []
        flows = {r["flow_id"] for r in runs(state["api_url"])}
        assert len(flows) == 1 and all(r["state_type"] == "COMPLETED" for r in runs(state["api_url"]))
    finally:
        stopped = mailflow(home, "--json", "server", "stop")
    assert stopped.returncode == 0 and json.loads(stopped.stdout)["stopped"]
    assert not (home / "prefect" / "server.json").exists() and not (home / "prefect" / "server.pid").exists()
    assert ended(state["pid"])
    gone = mailflow(home, "server", "status")
    assert gone.returncode == 1 and gone.stderr.count("\n") == 1 and "no Prefect server running" in gone.stderr


@pytest.mark.integration
@pytest.mark.slow
def test_the_send_workers_report_to_the_parents_server_and_start_none(tmp_path, receiver, monkeypatch):
    home, _ = planned_campaign(tmp_path, recipients=60, chunk_size=10)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)  # an earlier in-process command may have left its server's
    with home_server(home) as state:
        proc = mailflow_send(home, receiver.port)
        _, err, _ = finish(proc, timeout=300)
        assert proc.returncode == 0, err
        assert TEMPORARY not in err
        (flow_run,) = [r for r in runs(state.api_url) if r["state_type"] == "COMPLETED"]
        chunks = Counter(t["name"].rsplit("-", 1)[0] for t in runs(state.api_url, "task_runs")
                         if t["flow_run_id"] == flow_run["id"] and t["state_type"] == "COMPLETED")
        # Six chunks, each sent in a worker process: each recorded its task run on this server, under the parent's run
        assert chunks["send_chunk"] == 6, chunks
        assert len(receiver.received) == 60


@pytest.mark.integration
def test_a_stale_state_is_cleared_and_said(tmp_path):
    home = tmp_path / "h"
    home.mkdir(mode=0o700)
    (home / "prefect").mkdir()
    port = free_port()
    stale = {"pid": dead_pid(), "api_url": f"http://127.0.0.1:{port}/api", "ui_url": f"http://127.0.0.1:{port}",
             "started_at": "2026-12-01T00:00:00+00:00"}
    (home / "prefect" / "server.json").write_text(json.dumps(stale))
    (home / "prefect" / "server.pid").write_text(f"{stale['pid']}\n")
    assert running_server_url(home) is None
    status = mailflow(home, "server", "status")
    assert status.returncode == 1 and status.stderr.count("\n") == 1 and "no Prefect server running" in status.stderr
    assert not (home / "prefect" / "server.json").exists() and not (home / "prefect" / "server.pid").exists()
    (home / "prefect" / "server.json").write_text(json.dumps(stale))
    stopped = mailflow(home, "server", "stop")
    assert stopped.returncode == 0 and "no Prefect server running" in stopped.stdout
    assert not (home / "prefect" / "server.json").exists()


def test_a_live_pid_of_another_program_is_not_taken_for_the_server(tmp_path):
    home = tmp_path / "h"
    (home / "prefect").mkdir(parents=True)
    state = {"pid": os.getpid(), "api_url": "http://127.0.0.1:9/api", "ui_url": "http://127.0.0.1:9",
             "started_at": "2026-12-01T00:00:00+00:00"}
    (home / "prefect" / "server.json").write_text(json.dumps(state))
    assert prefect_server.read_state(home) is None  # pytest is no Prefect server: never signalled by `stop`
    assert prefect_server.stop(home) is None


@pytest.mark.integration
def test_a_busy_port_is_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = mailflow(tmp_path / "h", "server", "start", "--port", str(port))
    assert out.returncode == 1 and out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert f"port {port} on 127.0.0.1 is in use" in out.stderr
    assert not (tmp_path / "h" / "prefect" / "server.json").exists()


def test_a_port_out_of_range_is_bad_usage(tmp_path):
    out = mailflow(tmp_path / "h", "server", "start", "--port", "70000")
    assert out.returncode == 2 and out.stderr == "mailflow: --port 70000: not a TCP port (1-65535)\n"


PREFECT_FREE = [("sql", "select count(*) from subscribers"), ("report", "stopped"), ("campaigns", "show", "stopped"),
                ("segments", "count", "engaged_90d"), ("lists", "show"), ("lists", "block", "*@blocked.example"),
                ("server", "status")]


@pytest.mark.integration
def test_commands_that_run_no_flow_never_import_prefect(tmp_path):
    home, _ = planned_campaign(tmp_path, recipients=5)
    probe = ("import sys\nfrom mailflow.cli import main\ncode = main(sys.argv[1:])\n"
             "print('IMPORTED' if 'prefect' in sys.modules else 'CLEAN', code, file=sys.stderr)\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["PREFECT_API_URL"] = f"http://127.0.0.1:{free_port()}/api"  # closed: anything that reached for Prefect would fail
    for args in PREFECT_FREE:
        out = subprocess.run([sys.executable, "-c", probe, "--home", str(home), *args], capture_output=True, text=True,
                             timeout=120, env=env)
        verdict, code = out.stderr.splitlines()[-1].split()
        assert verdict == "CLEAN", (args, out.stderr)
        assert code == ("1" if args == ("server", "status") else "0"), (args, out.stderr)


def test_a_configured_api_url_comes_first_and_command_runs_keep_no_heartbeat_thread(tmp_path, monkeypatch):
    import prefect.context

    from mailflow.cli.prefect_env import use_server

    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    api = use_server(tmp_path / "h")
    assert (api.url, api.source, api.ui_url) == ("http://127.0.0.1:9/api", "configured", "http://127.0.0.1:9")
    # A flow run would otherwise wait up to a second at its end for the heartbeat thread's sleep
    assert prefect.context.GLOBAL_SETTINGS_CONTEXT.settings.flows.heartbeat_frequency is None


def test_the_servers_environment_is_its_own(tmp_path):
    env = prefect_server.server_environment(tmp_path, {"PATH": "/bin", "PREFECT_API_URL": "http://elsewhere/api",
                                                       "PREFECT_API_DATABASE_CONNECTION_URL": "postgresql+asyncpg://x"})
    assert "PREFECT_API_URL" not in env and "PREFECT_API_DATABASE_CONNECTION_URL" not in env
    assert env["PREFECT_HOME"] == str(tmp_path) and env["PATH"] == "/bin"
    assert env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] == f"sqlite+aiosqlite:///{tmp_path / 'prefect.db'}"
    assert env["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"


@pytest.mark.integration
def test_a_server_that_does_not_answer_in_time_is_stopped_and_said(tmp_path):
    home = tmp_path / "h"
    out = mailflow(home, "server", "start", "--port", str(free_port()), "--timeout", "0.01")
    assert out.returncode == 1 and out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert "the Prefect server did not answer within 0.01 s; its log" in out.stderr and "server.log ends: " in out.stderr
    assert not (home / "prefect" / "server.json").exists() and not (home / "prefect" / "server.pid").exists()


@pytest.mark.integration
@pytest.mark.slow
def test_without_a_server_a_flow_command_says_once_that_it_starts_a_temporary_one(tmp_path):
    out = mailflow(tmp_path / "h", "aggregate")
    assert out.returncode == 0, out.stderr
    assert out.stderr.count(TEMPORARY) == 1 and "mailflow server start" in out.stderr
    assert "loaded 0 ledger records" in out.stdout
