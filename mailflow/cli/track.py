"""`mailflow track`: the tracking and unsubscribe HTTP service."""

from __future__ import annotations

import click

from mailflow.cli.context import Context, pass_ctx


@click.group()
def track() -> None:
    """The tracking and unsubscribe HTTP service: open pixel, clicks, one-click unsubscribe."""


@track.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0 or :: for all).")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535), help="Port to listen on.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Worker processes (about one per core); each writes its own event log.")
@pass_ctx
def track_serve(ctx: Context, host: str, port: int, workers: int) -> None:
    """Answer the links in sent mail until stopped (Ctrl-C or SIGTERM); events go to HOME/events."""
    from mailflow.tasks.track.server import check, probe, serve

    settings = ctx.settings()
    check(settings)
    probe(host, port)  # before saying it serves: a port in use is the one line the user sees
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"tracking service on http://{shown}:{port} ({workers} worker{'s' if workers > 1 else ''}); "
               f"events in {settings.home / 'events'}; Ctrl-C stops it", err=True)
    serve(settings, host, port, workers)
