"""Prefect's environment defaults, set before Prefect is imported, and the server a command uses: a configured one,
the home's own (`mailflow server start`), or else a temporary one, started apart."""

from __future__ import annotations

import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import click

from mailflow import interrupt, prefect_server

# No network here or at many sites: Prefect must never phone home or wait on the internet.
DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    # Ephemeral runs: the command prints its own summary; run logs still reach the API/UI.
    "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "CRITICAL",
}


def prepare(verbose: bool = False) -> None:
    for name, value in DEFAULTS.items():
        os.environ.setdefault(name, value)
    if verbose:
        os.environ["PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"] = "INFO"


def running_server_url(home: Path) -> str | None:
    """The API URL of the home's running server (`mailflow server start`) when it answers, else None.
    (Generous wait: on a busy machine a live server may take seconds to answer, and the fallback costs more.)"""
    state = prefect_server.read_state(home)
    return state.api_url if state and prefect_server.healthy(state.api_url, timeout=10.0) else None


@dataclass(frozen=True)
class Api:
    url: str
    source: str  # "configured" (PREFECT_API_URL, a profile, a test harness), "home" or "temporary"

    @property
    def ui_url(self) -> str:
        return self.url.removesuffix("/").removesuffix("/api")


def use_server(home: Path) -> Api:
    """Point Prefect at a server before a flow runs, and return where the runs go.

    In order: a configured PREFECT_API_URL (environment, Prefect profile, test harness); the home's
    running server; else Prefect's temporary server, with one line saying what it costs. The URL
    ends up in the environment, which the send's worker processes (and anything else this command
    starts) inherit, so they report to the same server instead of each starting one.
    """
    from prefect.settings import get_current_settings

    configured = os.environ.get("PREFECT_API_URL") or get_current_settings().api.url
    if configured:
        _settings_from_environment(refresh=False)
        return Api(configured, "configured")
    url = running_server_url(home)
    if url:
        os.environ["PREFECT_API_URL"] = url
        _settings_from_environment()  # Prefect read its settings at import, before the URL was known
        return Api(url, "home")
    click.echo("mailflow: no Prefect server for this home: starting a temporary one (about 10 s on every command; "
               "run `mailflow server start` once to skip it)", err=True)
    return Api(start_server() or "", "temporary")


def _settings_from_environment(refresh: bool = True) -> None:
    """Prefect's process-wide settings again from the environment, without flow-run heartbeats.

    Heartbeats serve an automation that marks runs whose process died (mailflow creates none, and
    the command itself sees its runs end); and a flow run waits for its heartbeat thread's one-second
    sleep to end before it returns: up to 1 s per flow run, 0.5 on average, ~4 s of the demo's seven.
    Runs started by a worker from a deployment do not pass here and keep Prefect's heartbeats.
    """
    import prefect.context as context

    if refresh:
        context.refresh_global_settings_context()
    root = context.GLOBAL_SETTINGS_CONTEXT
    flows = root.settings.flows.model_copy(update={"heartbeat_frequency": None})
    context.GLOBAL_SETTINGS_CONTEXT = context.SettingsContext(profile=root.profile,
                                                              settings=root.settings.model_copy(update={"flows": flows}))


def start_server() -> str | None:
    """Start Prefect's temporary server now, unless a server is configured, apart from the command.

    Ctrl-C signals the terminal's whole process group: a server in it stops at once, and the
    flow it serves fails with ConnectError however carefully the command winds down. So the
    server runs in a session of its own (and, on Linux, still ends when the command ends, even
    killed). Its address goes into the environment so the send's worker processes use this
    server rather than each starting one of their own.
    """
    from prefect.settings import get_current_settings

    settings = get_current_settings()
    if settings.api.url or not settings.server.ephemeral.enabled:
        return settings.api.url
    from prefect.server.api import server as api

    server = api.SubprocessASGIServer()  # the instance Prefect's client starts and uses
    if not server.running:
        interrupt.at_hard_exit(lambda: server.server_process and server.server_process.terminate())
        real = api.subprocess
        api.subprocess = _OwnSession(real)  # how that module sees subprocess, only while it starts the server
        try:
            server.start()
        finally:
            api.subprocess = real
    os.environ["PREFECT_API_URL"] = server.api_url
    _settings_from_environment()
    return server.api_url


class _OwnSession:
    def __init__(self, real):
        self._real = real

    def __getattr__(self, name):
        return getattr(self._real, name)

    def Popen(self, *args, **kwargs):  # noqa: N802 - stands in for subprocess.Popen
        return self._real.Popen(*args, start_new_session=True, preexec_fn=_end_with_parent(), **kwargs)


def _end_with_parent():
    """Linux: the child gets SIGTERM when the thread that started it ends (here the main thread,
    so: when the command ends, however). Elsewhere the command stops the server when it exits."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    return lambda: prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
