"""Prefect's environment defaults, set before Prefect is imported, and its temporary server, started apart."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

from mailflow import interrupt

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
    """The API URL of the home's own Prefect server (`mailflow server start`), or None when it is not running.

    HOME/prefect/server.json says where it listens and which process serves it; a file left by a
    server that has since died (its pid gone) counts for nothing.
    """
    try:
        info = json.loads((Path(home) / "prefect" / "server.json").read_text())
        url, pid = str(info["api_url"]), int(info["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return url if pid > 0 and _alive(pid) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether it is there
    except PermissionError:
        return True  # there, under another user
    except OSError:
        return False
    return True


def start_server() -> None:
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
        return
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
