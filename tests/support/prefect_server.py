"""A Prefect server and workers on loopback for integration tests: own PREFECT_HOME, a free port, stopped by PID."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from mailflow.tasks.demo.receiver import free_port

PREFECT = str(Path(sys.executable).with_name("prefect"))  # the venv's, beside this interpreter
START_LIMIT = 180.0  # seconds: a bound on the server's start-up (7-30 s on 2 busy cores), not a timing assumption
STOP_WAIT = 20.0


def _quiet_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}  # not the test harness's server
    env.update({"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"})
    env.update(extra or {})
    return env


def _own_session() -> None:
    """In the child: SIGINT back to its default (a background child inherits it ignored, and would not stop)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(args: list[str], cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("ab") as out:
        return subprocess.Popen(args, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=_own_session)


class PrefectServer:
    """`prefect server start` on 127.0.0.1 and a free port, with its database and logs under `home`."""

    def __init__(self, home: Path):
        self.home = Path(home)
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.log = self.home / "server.log"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> PrefectServer:
        self.home.mkdir(parents=True, exist_ok=True)
        env = _quiet_env({"PREFECT_HOME": str(self.home), "PREFECT_SERVER_UI_API_URL": self.api_url})
        self.proc = _start([PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
                           self.home, env, self.log)
        deadline = time.monotonic() + START_LIMIT
        while not self._healthy():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the Prefect server did not start; its log:\n{self.log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.5)
        return self

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.api_url}/health", timeout=5) as response:
                return response.status == 200
        except (OSError, urllib.error.URLError):
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
    """`prefect worker start --pool POOL` (a process worker) against `api_url`, with `env` over a clean
    environment; its output goes to `proc.log` (a file), and it runs in a session of its own with SIGINT reset.
    `limit`: at most this many flow runs at once (`--limit`), so that runs spread over several workers."""
    fd, log = tempfile.mkstemp(prefix=f"prefect-worker-{pool}-", suffix=".log")
    os.close(fd)
    full = _quiet_env({"PREFECT_API_URL": api_url, "PREFECT_WORKER_QUERY_SECONDS": "1",
                       "PREFECT_LOGGING_LEVEL": "INFO", **{k: str(v) for k, v in env.items()}})
    args = [PREFECT, "worker", "start", "--pool", pool, "--type", "process", *(["--limit", str(limit)] if limit else [])]
    proc = _start(args, Path(cwd), full, Path(log))
    proc.log = Path(log)  # type: ignore[attr-defined]
    return proc


def stop_process(proc: subprocess.Popen) -> None:
    """SIGTERM to the process (by its PID), a bounded wait, then SIGKILL to its session."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_WAIT)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # its own session: the group is its and its children's alone
            except ProcessLookupError:
                pass
            proc.wait(timeout=STOP_WAIT)
