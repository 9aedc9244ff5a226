"""Running the service: `serve` (uvicorn on uvloop + httptools, N worker processes) and `running_service` (a thread)."""

from __future__ import annotations

import base64
import os
import pickle
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from mailflow.errors import MailflowError
from mailflow.settings import Settings
from mailflow.tasks.core.serving import probe, serving
from mailflow.tasks.files.suppress import suppression_dir
from mailflow.tasks.track.app import create_app
from mailflow.tasks.track.events import events_dir
from mailflow.tasks.track.guard import MAX_HEADERS
from mailflow.tasks.track.metrics import metrics_dir

SETTINGS_ENV = "MAILFLOW_TRACK_SETTINGS"  # how worker processes get the settings (secrets travel as their source only)
__all__ = ["check", "probe", "running_service", "serve", "uvicorn_options"]  # probe: mailflow/cli/track.py imports it here


def uvicorn_options() -> dict:
    """uvloop and httptools: 36k requests/s through Starlette here against 1.4k with h11 on asyncio.
    Proxy headers are ours to judge (tracking.trusted_proxies), not uvicorn's (it trusts 127.0.0.1)."""
    return dict(loop="uvloop", http="httptools", proxy_headers=False, server_header=False, date_header=True,
                access_log=False, log_level="warning", backlog=2048, limit_concurrency=4096, timeout_keep_alive=5,
                timeout_graceful_shutdown=10, h11_max_incomplete_event_size=MAX_HEADERS)


def check(settings: Settings) -> None:
    """What the service needs before it listens: the secret, and folders it can write its logs in (an
    unwritable home found at start-up is one line, not every event answered 503 once it runs)."""
    if not settings.tracking.secret:
        raise MailflowError("set MAILFLOW_TRACKING__SECRET: the service checks every token with it")
    home = settings.home
    for folder in (events_dir(home), suppression_dir(home) / "log", metrics_dir(home)):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MailflowError(f"cannot write {folder}: {exc.strerror or exc}") from None
        if not os.access(folder, os.W_OK | os.X_OK):
            raise MailflowError(f"cannot write {folder}: permission denied")


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8080, workers: int = 1) -> None:
    """Serve until SIGINT or SIGTERM; each worker flushes and fsyncs its event log as it stops."""
    check(settings)
    probe(host, port)
    if workers == 1:
        uvicorn.run(create_app(settings), host=host, port=port, **uvicorn_options())
        return
    # uvicorn starts each worker by importing a factory: it finds the settings in the environment,
    # pickled (a Secret pickles as where to read it, which each worker does from its own environment)
    os.environ[SETTINGS_ENV] = base64.b64encode(pickle.dumps(settings)).decode()
    uvicorn.run(f"{__name__}:app_from_environment", factory=True, host=host, port=port, workers=workers,
                **uvicorn_options())


def app_from_environment():
    return create_app(pickle.loads(base64.b64decode(os.environ[SETTINGS_ENV])))


@contextmanager
def running_service(settings: Settings, host: str = "127.0.0.1", port: int = 0, **app_options) -> Iterator[str]:
    """The service on a thread of this process (tests, the demo): yields its base URL; on exit it
    stops taking requests, finishes those under way, and fsyncs and closes its event log.
    `app_options` go to create_app (e.g. `sns_fetch`)."""
    check(settings)
    with serving(create_app(settings, **app_options), uvicorn_options(), host, port, "tracking service") as url:
        yield url
