"""The home's Prefect server (`mailflow server start`) for tests: on a free loopback port, always stopped by its PID."""

from __future__ import annotations

import contextlib
import os
import signal
import socket

import httpx

from mailflow import prefect_server


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def home_server(home):
    """The home's server, started as `mailflow server start` starts it; stopped (and killed if need be) after."""
    home.mkdir(mode=0o700, exist_ok=True)
    state = None
    try:
        state, _ = prefect_server.start(home, free_port())
        yield state
    finally:
        prefect_server.stop(home)
        if state is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(state.pid, signal.SIGKILL)  # stop() gave up: leave nothing running


def runs(api_url: str, kind: str = "flow_runs") -> list[dict]:
    """The flow (or task) runs the server recorded."""
    response = httpx.post(f"{api_url}/{kind}/filter", json={"limit": 200}, timeout=30)
    response.raise_for_status()
    return response.json()
