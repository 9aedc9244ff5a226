"""The home's own Prefect server: started in the background, found again by its state file, stopped by its PID."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from mailflow.errors import MailflowError, NeedsAttention

HOST = "127.0.0.1"  # loopback only: the API has no authentication
DEFAULT_PORT = 4200
START_TIMEOUT = 120.0  # seconds; the server takes 7-20 s to answer on a busy two-core machine
STOP_TIMEOUT = 15.0  # seconds between SIGTERM and SIGKILL
# What the user's shell may say about another server or database, which this one must not take
OTHER_SERVERS = ("PREFECT_API_URL", "PREFECT_PROFILE", "PREFECT_API_DATABASE_CONNECTION_URL",
                 "PREFECT_SERVER_DATABASE_CONNECTION_URL", "PREFECT_UI_API_URL", "PREFECT_UI_URL")


@dataclass(frozen=True)
class ServerState:
    pid: int
    api_url: str
    ui_url: str
    started_at: str  # ISO 8601, UTC

    def uptime(self, now: datetime | None = None) -> float:
        return ((now or datetime.now(UTC)) - datetime.fromisoformat(self.started_at)).total_seconds()


def prefect_dir(home: Path) -> Path:
    """The server's PREFECT_HOME: its SQLite database (flow runs, concurrency limits), log, PID and state."""
    return Path(home) / "prefect"


def state_path(home: Path) -> Path:
    return prefect_dir(home) / "server.json"


def pid_path(home: Path) -> Path:
    return prefect_dir(home) / "server.pid"


def log_path(home: Path) -> Path:
    return prefect_dir(home) / "server.log"


def read_state(home: Path) -> ServerState | None:
    """The running server's state, or None; a state left by a server that is gone is removed."""
    try:
        state = ServerState(**json.loads(state_path(home).read_text()))
    except (OSError, ValueError, TypeError):
        return None
    if not _is_our_server(state.pid):
        _forget(home)
        return None
    return state


def healthy(api_url: str, timeout: float = 2.0) -> bool:
    """Whether the API answers its health check (urllib: no HTTP client library to import for it)."""
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=timeout) as response:  # noqa: S310 - loopback URL we wrote
            return response.status == 200
    except (OSError, urllib.error.URLError, ValueError):
        return False


def start(home: Path, port: int = DEFAULT_PORT, timeout: float = START_TIMEOUT) -> tuple[ServerState, bool]:
    """Start the home's server unless it runs; (its state, whether it was started now). Waits until it answers."""
    running = read_state(home)
    if running:
        return running, False
    if not port_free(port):
        raise NeedsAttention(f"port {port} on {HOST} is in use (another Prefect server?); choose another with --port")
    folder = prefect_dir(home)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(log_path(home), "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", HOST, "--port", str(port)],
            env=server_environment(folder, os.environ), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # not tied to the terminal: Ctrl-C there or closing it leaves the server running
            preexec_fn=_default_sigint, cwd=folder)
    api_url = f"http://{HOST}:{port}/api"
    state = ServerState(process.pid, api_url, f"http://{HOST}:{port}", datetime.now(UTC).isoformat(timespec="seconds"))
    pid_path(home).write_text(f"{process.pid}\n")
    state_path(home).write_text(json.dumps(asdict(state)) + "\n")
    deadline = time.monotonic() + timeout
    while not healthy(api_url, timeout=1.0):
        if process.poll() is not None or time.monotonic() > deadline:
            why = "exited" if process.poll() is not None else f"did not answer within {timeout:g} s"
            _end(process)
            _forget(home)
            raise NeedsAttention(f"the Prefect server {why}; its log {log_path(home)} ends: {last_line(log_path(home))}")
        time.sleep(0.25)
    return state, True


def stop(home: Path, timeout: float = STOP_TIMEOUT) -> ServerState | None:
    """Stop the home's server by its PID (SIGTERM, then SIGKILL after `timeout`); the state it had, or None."""
    state = read_state(home)
    if state is None:
        _forget(home)
        return None
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(state.pid, sig)  # its own session: the group is the server and what it started
        except ProcessLookupError:
            break
        if _wait_gone(state.pid, wait):
            break
    _forget(home)
    return state


def _end(process: subprocess.Popen) -> None:
    """Stop a server this process started (it may not have become `prefect server start` yet)."""
    for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
            process.wait(wait)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def server_environment(folder: Path, environ: dict[str, str]) -> dict[str, str]:
    """The server's environment: Prefect's home and SQLite database under the mailflow home, nothing phoning home."""
    env = {k: v for k, v in environ.items() if k not in OTHER_SERVERS}
    env.update(PREFECT_HOME=str(folder), PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1",
               PREFECT_SERVER_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{folder / 'prefect.db'}")
    return env


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def last_line(path: Path) -> str:
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "(no log)"
    return lines[-1] if lines else "(empty)"


def check_port(port: int) -> int:
    if not 0 < port < 65536:
        raise MailflowError(f"--port {port}: not a TCP port (1-65535)")
    return port


def _is_our_server(pid: int) -> bool:
    """The PID runs `prefect server start` (a PID reused by another program after a crash is not ours)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        try:
            os.kill(pid, 0)  # no /proc (not Linux): alive is the best we can tell
        except (ProcessLookupError, PermissionError):
            return False
        return True
    return b"prefect" in cmdline and b"server" in cmdline and b"start" in cmdline


def _wait_gone(pid: int, limit: float) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if not _is_our_server(pid):
            return True
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:  # our own child (started by this process): reap it
                return True
        except ChildProcessError:
            pass
        time.sleep(0.1)
    return False


def _forget(home: Path) -> None:
    for path in (state_path(home), pid_path(home)):
        path.unlink(missing_ok=True)


def _default_sigint() -> None:
    """In the server: Ctrl-C stops it again (a background job started from a script inherits SIGINT ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
