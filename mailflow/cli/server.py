"""`mailflow server start|stop|status`: the home's Prefect server, started once, that every later command uses."""

from __future__ import annotations

from dataclasses import asdict

import click

from mailflow import prefect_server
from mailflow.cli.context import Context, pass_ctx
from mailflow.errors import NeedsAttention


@click.group()
def server() -> None:
    """A local Prefect server for this home (API and UI on loopback) that every later command uses."""


@server.command("start")
@click.option("--port", type=int, default=prefect_server.DEFAULT_PORT, show_default=True, help="Loopback port for the API and UI.")
@click.option("--timeout", type=float, default=prefect_server.START_TIMEOUT, show_default=True,
              help="Seconds to wait for the API to answer.")
@pass_ctx
def server_start(ctx: Context, port: int, timeout: float) -> None:
    """Start the server in the background (its database, log and state under HOME/prefect); a running one is kept."""
    home = ctx.settings().home
    state, started = prefect_server.start(home, prefect_server.check_port(port), timeout)
    data = asdict(state) | {"started": started, "log": str(prefect_server.log_path(home))}
    ctx.emit(data, lambda d: click.echo(
        f"Prefect server {'started' if started else 'already running'}: UI {d['ui_url']}  API {d['api_url']}  "
        f"(pid {d['pid']}; log {d['log']})\nlater mailflow commands on this home use it; `mailflow server stop` ends it"))


@server.command("stop")
@click.option("--timeout", type=float, default=prefect_server.STOP_TIMEOUT, show_default=True,
              help="Seconds between SIGTERM and SIGKILL.")
@pass_ctx
def server_stop(ctx: Context, timeout: float) -> None:
    """Stop the home's server (SIGTERM, then SIGKILL after --timeout); nothing running is not an error."""
    state = prefect_server.stop(ctx.settings().home, timeout)
    data = {"stopped": state is not None, "pid": state.pid if state else None}
    ctx.emit(data, lambda d: click.echo(f"Prefect server stopped (pid {d['pid']})" if d["stopped"]
                                        else "no Prefect server running for this home"))


@server.command("status")
@pass_ctx
def server_status(ctx: Context) -> None:
    """Whether the home's server runs, its URLs, PID and uptime; exit 1 when it does not run or does not answer."""
    state = prefect_server.read_state(ctx.settings().home)
    if state is None:
        if ctx.as_json:
            ctx.emit({"running": False}, None)
        raise NeedsAttention("no Prefect server running for this home (start one with `mailflow server start`)")
    answers = prefect_server.healthy(state.api_url)
    data = {"running": True, "healthy": answers, **asdict(state), "uptime_seconds": round(state.uptime())}
    ctx.emit(data, lambda d: click.echo(
        f"running{'' if answers else ' but not answering'}: UI {d['ui_url']}  API {d['api_url']}  pid {d['pid']}  "
        f"up {_duration(d['uptime_seconds'])}"))
    if not answers:
        raise NeedsAttention(f"the Prefect server (pid {state.pid}) does not answer at {state.api_url}/health; "
                             f"see {prefect_server.log_path(ctx.settings().home)}")


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
