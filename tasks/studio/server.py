"""Running the studio: `serve` (uvicorn, one process: sessions live in its memory) and `running_studio` (a thread)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import uvicorn

from mailflow.errors import MailflowError
from mailflow.settings import Settings
from mailflow.tasks.core.serving import probe, serving
from mailflow.tasks.studio.app import create_app
from mailflow.tasks.studio.audit import audit_dir
from mailflow.tasks.studio.page import FORM_LIMIT

MIN_SECRET = 32  # characters of MAILFLOW_STUDIO__SECRET: e.g. `python -c "import secrets; print(secrets.token_urlsafe(32))"`


def uvicorn_options() -> dict:
    """A few people at a time: h11 on asyncio is plenty. Proxy headers are not believed (the audit log keeps the peer)."""
    return dict(proxy_headers=False, server_header=False, access_log=False, log_level="warning",
                timeout_keep_alive=5, timeout_graceful_shutdown=10, h11_max_incomplete_event_size=FORM_LIMIT)


def check(settings: Settings) -> None:
    """What the studio needs before it listens: its secret, and a home it can keep users and the audit log in."""
    secret = settings.studio.secret.reveal()
    if len(secret) < MIN_SECRET:
        raise MailflowError(f"set MAILFLOW_STUDIO__SECRET to at least {MIN_SECRET} random characters: it signs every "
                            "session cookie" + (f" (it has {len(secret)})" if secret else ""))
    folder = audit_dir(settings.home)
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise MailflowError(f"cannot write {folder}: {exc.strerror or exc}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise MailflowError(f"cannot write {folder}: permission denied")


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8090) -> None:
    """Serve until SIGINT or SIGTERM."""
    check(settings)
    probe(host, port)
    uvicorn.run(create_app(settings), host=host, port=port, **uvicorn_options())


@contextmanager
def running_studio(settings: Settings, host: str = "127.0.0.1", port: int = 0,
                   clock: Callable[[], float] | None = None) -> Iterator[str]:
    """The studio on a thread of this process (tests): yields its base URL."""
    check(settings)
    app = create_app(settings) if clock is None else create_app(settings, clock)
    with serving(app, uvicorn_options(), host, port, "studio") as url:
        yield url
