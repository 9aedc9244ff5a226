"""The tracking benchmark's baseline: a bare ASGI app answering every request with the open pixel's 43-byte GIF.

It neither routes, verifies nor logs; it runs under the service's own uvicorn options (uvloop,
httptools, the same workers), so tracking ÷ bare is the cost of what the service does per request.
Run as `python -m bench.track_bare PORT WORKERS`.
"""

from __future__ import annotations

import sys

import uvicorn

from mailflow.tasks.track.app import GIF
from mailflow.tasks.track.server import uvicorn_options

START = {"type": "http.response.start", "status": 200,
         "headers": [(b"content-type", b"image/gif"), (b"content-length", str(len(GIF)).encode()),
                     (b"cache-control", b"no-store")]}
BODY = {"type": "http.response.body", "body": GIF}


async def app(scope, receive, send):
    if scope["type"] != "http":  # lifespan: nothing to set up
        message = await receive()
        while message["type"] != "lifespan.shutdown":
            await send({"type": message["type"] + ".complete"})
            message = await receive()
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send(START)
    await send(BODY)


def main(port: int, workers: int) -> None:
    uvicorn.run(f"{__name__}:app", host="127.0.0.1", port=port, workers=workers, **uvicorn_options())


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
