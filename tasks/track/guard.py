"""Limits and counting around the app: methods, URL, header and body sizes (413/414/431/405); requests by route and status."""

from __future__ import annotations

from mailflow.tasks.track.metrics import route_of

METHODS = frozenset({"GET", "HEAD", "POST"})
MAX_URL = 4096  # path and query: a redirect's signed URL fits many times over
MAX_HEADERS = 8192  # all header lines together
MAX_BODY = 16384  # a form post (unsubscribe reason, preferences)
# Provider webhooks post more: SendGrid batches events (a few MB); an SNS message is at most 256 KB, escaped in JSON
ROUTE_BODY = {"/webhooks/sendgrid": 8 * 2**20, "/webhooks/ses": 2**20, "/webhooks/postmark": 2**20,
              "/webhooks/mailgun": 2**20}


def body_limit(path: str) -> int:
    return ROUTE_BODY.get(path, MAX_BODY)


class Guard:
    """Pure ASGI middleware inside Starlette (so `scope["app"].state.track` is there). Every answer is
    counted under its route label; one it refuses costs no parsing and writes no event."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        metrics = scope["app"].state.track.metrics
        status = 500

        async def counted(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            refusal = _refusal(scope)
            if refusal is None and _has_body(scope):
                body, refusal = await _read_body(receive, body_limit(scope["path"]))
                if refusal is None:
                    receive = _replay(body, receive)
            if refusal is not None:
                await _answer(counted, *refusal)
            else:
                await self.app(scope, receive, counted)
        except Exception:
            metrics.errors += 1
            raise
        finally:
            metrics.requests[(route_of(scope["path"]), status)] += 1


def _refusal(scope) -> tuple[int, bytes, list] | None:
    if scope["method"] not in METHODS:
        return 405, b"method not allowed\n", [(b"allow", b"GET, HEAD, POST")]
    if len(scope.get("raw_path") or b"") + len(scope["query_string"]) > MAX_URL:
        return 414, b"URI too long\n", []
    if sum(len(k) + len(v) + 4 for k, v in scope["headers"]) > MAX_HEADERS:
        return 431, b"request header fields too large\n", []
    for name, value in scope["headers"]:
        if name == b"content-length" and (not value.isdigit() or int(value) > body_limit(scope["path"])):
            return (413, b"request body too large\n", []) if value.isdigit() else (400, b"bad content-length\n", [])
    return None


def _has_body(scope) -> bool:
    return any(name in (b"content-length", b"transfer-encoding") for name, _ in scope["headers"])


async def _read_body(receive, limit: int) -> tuple[bytes, tuple | None]:
    """The whole body, at most `limit` bytes (a chunked one has no length to refuse up front)."""
    parts, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"", (400, b"client went away\n", [])
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return b"", (413, b"request body too large\n", [])
        parts.append(chunk)
        if not message.get("more_body"):
            return b"".join(parts), None


def _replay(body: bytes, receive):
    """The body read, handed over once; after it, the connection's own messages (a disconnect)."""
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()
    return replay


async def _answer(send, status: int, body: bytes, headers: list) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close"), *headers]})
    await send({"type": "http.response.body", "body": body})
