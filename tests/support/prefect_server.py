"""A real Prefect server on loopback (own PREFECT_HOME, free port) and Prefect workers, started with SIGINT reset and stopped by PID."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

START_LIMIT = 180.0  # seconds: a bound on the wait for /api/health (migrations on 2 busy cores), not a timing assumption
STOP_LIMIT = 20.0
PREFECT = [sys.executable, "-m", "prefect"]
QUIET = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _reset_sigint() -> None:
    # A process started in the background from a script inherits SIGINT ignored (DESIGN.md): then it never stops on it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _own_environment(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment without its Prefect client settings (a test harness's API, console levels)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    return env | QUIET | extra


class PrefectServer:
    """`prefect server start` on a free loopback port with its own PREFECT_HOME (database, logs) under `home`."""

    def __init__(self, home: Path):
        self.home = Path(home)
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.log = self.home / "server.log"

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.ui_url}/api"

    def start(self) -> PrefectServer:
        self.home.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        env = _own_environment({
            "PREFECT_HOME": str(self.home),
            # Runs start because a test asks, never because an interval came round while it ran.
            "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
            "PREFECT_SERVER_UI_ENABLED": "true",
            "PREFECT_UI_API_URL": self.api_url,  # else the UI's pages call the default port, 4200
        })
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([*PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
                                         env=env, cwd=self.home, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_reset_sigint)
        deadline = time.monotonic() + START_LIMIT
        while not self.healthy():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the Prefect server did not come up; its log:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.5)
        return self

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.api_url}/health", timeout=5) as reply:
                return json.loads(reply.read()) is True
        except (OSError, ValueError, urllib.error.URLError):
            return False

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None

    def __enter__(self) -> PrefectServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def start_worker(api_url: str, pool: str, cwd: Path, env: dict, *, limit: int | None = None) -> subprocess.Popen:
    """`prefect worker start --pool POOL` against `api_url`, in `cwd`, with `env` over this process's environment
    (without its PREFECT_* settings); its output goes to `proc.log_path`. `limit`: at most this many flow runs at
    once (`--limit`), so that runs spread over several workers."""
    full = _own_environment({**{k: v for k, v in env.items() if not k.startswith("PREFECT_")}, "PREFECT_API_URL": api_url,
                             "PREFECT_WORKER_QUERY_SECONDS": "1"})
    full.update({k: v for k, v in env.items() if k.startswith("PREFECT_") and k != "PREFECT_API_URL"})
    log_path = Path(tempfile.mkstemp(prefix="prefect-worker-", suffix=".log")[1])
    with log_path.open("ab") as log:
        proc = subprocess.Popen([*PREFECT, "worker", "start", "--pool", pool, "--type", "process",
                                 *(["--limit", str(limit)] if limit else [])], env=full, cwd=cwd, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                                preexec_fn=_reset_sigint)
    proc.log_path = log_path  # type: ignore[attr-defined]
    return proc


def stop_process(proc: subprocess.Popen) -> None:
    """SIGTERM to the process (by its PID), a bounded wait, then SIGKILL; its own children go with it (its session)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_LIMIT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_LIMIT)
    _end_session(proc.pid)


def _end_session(sid: int) -> None:
    """What the process started and left behind (a worker's flow-run processes), found by its session id."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getsid(int(entry.name)) == sid:
                os.kill(int(entry.name), signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            continue
