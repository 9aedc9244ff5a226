"""An ASGI app served by uvicorn on a thread of this process (tests, the demo), and the port check before serving."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
import uvloop

from mailflow.errors import MailflowError

START_SECONDS = 30.0  # a service that is not answering after this long failed to start


@contextmanager
def serving(app, options: dict, host: str = "127.0.0.1", port: int = 0, name: str = "service") -> Iterator[str]:
    """`app` on `host:port` (0: a free port) until the block ends: yields its base URL; on exit it stops
    taking requests, finishes those under way and runs the app's shutdown."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    server = uvicorn.Server(uvicorn.Config(app, **options))
    failure: list[BaseException] = []

    def run() -> None:
        try:
            uvloop.run(server.serve(sockets=[sock]))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            failure.append(exc)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    deadline = time.monotonic() + START_SECONDS
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)  # polling the condition: uvicorn sets `started` once it listens
    try:
        if not server.started:
            raise RuntimeError(f"the {name} did not start: {failure[0] if failure else 'timed out'}")
        bound = sock.getsockname()[1]
        yield f"http://[{host}]:{bound}" if family == socket.AF_INET6 else f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(START_SECONDS)
        sock.close()


def probe(host: str, port: int) -> None:
    """A port already taken is one line for the user, not uvicorn's exit."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise MailflowError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
