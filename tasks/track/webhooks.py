"""Provider event webhooks (POST /webhooks/ses|sendgrid|postmark|mailgun): verified, mapped to sends, written before the 2xx."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import os
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from mailflow.tasks.bounces.mapping import SendIndex, SendMatch, bare_address
from mailflow.tasks.bounces.providers import Row, event_id, mailgun_rows, postmark_rows, sendgrid_rows, ses_rows
from mailflow.tasks.files.suppress import SuppressionLog
from mailflow.tasks.track.sns import SnsRefused, SnsVerifier

NO_STORE = {"Cache-Control": "no-store"}
SENDGRID_SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"
INDEX_SECONDS = 300.0  # the send index is rebuilt this often, so campaigns sent since are found
SEEN_KEPT = 20_000  # event ids this process wrote lately: a provider's retry writes nothing again
SOURCE = "webhooks"  # suppression lines' source when the event maps to no campaign
SUPPRESS = {"complaint": "complaint", "unsubscribe": "unsubscribe"}  # hard bounces: bounce:<reason>


class SendMapper:
    """Which send a provider's event belongs to: a signed token in the headers it echoes, then the `mailflow_send`
    custom arg, then the recipient in the send ledgers. Used on one thread of its own (SendIndex is not thread-safe)."""

    def __init__(self, home, signer):
        self.home, self.signer = home, signer
        self._index: SendIndex | None = None
        self._built = 0.0

    def match(self, rows: list[Row]) -> list[SendMatch | None]:
        if self._index is None or time.monotonic() - self._built > INDEX_SECONDS:
            self._index, self._built = SendIndex(self.home, self.signer), time.monotonic()
        out = []
        for row in rows:
            found = None
            for text in (row.echoed, row.custom):
                found = found or (self._index.match(text, {}, None) if text else None)
            out.append(found or self._index.match(None, {}, row.recipient))
        return out


@dataclass
class WebhookState:
    """Per worker process, beside the service's context."""

    mapper: SendMapper
    sns: SnsVerifier
    pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="webhooks"))
    seen: OrderedDict = field(default_factory=OrderedDict)
    mailgun_tokens: OrderedDict = field(default_factory=OrderedDict)  # token -> (timestamp, digest of the body)
    sendgrid_key: ec.EllipticCurvePublicKey | None = None


def state_of(request: Request) -> WebhookState:
    state = getattr(request.app.state, "webhooks", None)
    if state is None:
        ctx = request.app.state.track
        fetch = getattr(request.app.state, "sns_fetch", None)
        state = WebhookState(SendMapper(ctx.settings.home, ctx.signer),
                             SnsVerifier(ctx.settings.home / "track" / "sns-certs", fetch))
        request.app.state.webhooks = state
    return state


def answer(status: int, text: str, **headers: str) -> Response:
    return PlainTextResponse(text + "\n", status_code=status, headers={**NO_STORE, **headers})


def refuse(request: Request, provider: str, cause: str, status: int, text: str, **headers: str) -> Response:
    """A request not believed: counted in /metrics, nothing written."""
    request.app.state.track.metrics.webhook_refusals[(provider, cause)] += 1
    return answer(status, text, **headers)


async def off_loop(request: Request, fn, *args):
    return await asyncio.get_running_loop().run_in_executor(state_of(request).pool, fn, *args)


def parsed(body: bytes, kind: type):
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, kind) else None


async def record(request: Request, provider: str, rows: list[Row]) -> Response:
    """Each new row's event (and its suppression) on disk, fsynced, before the 2xx; a 503 otherwise, so the
    provider tries again (the same event ids: what was written before the failure still counts once)."""
    ctx, state = request.app.state.track, state_of(request)
    fresh = {event_id(provider, row): row for row in rows}  # a batch may repeat an event, too
    rows = [row for key, row in fresh.items() if key not in state.seen]
    matches = await off_loop(request, state.mapper.match, rows) if rows else []
    source, suppressions = f"webhook:{provider}", []
    try:
        for row, match in zip(rows, matches, strict=True):
            ids = {"campaign_id": match.campaign_id, "subscriber_id": match.subscriber_id, "variant": match.variant} \
                if match else {"campaign_id": None, "subscriber_id": None, "variant": None}
            event = {"event_id": event_id(provider, row), "occurred_at": row.occurred_at or _now(), "type": row.type, **ids}
            if row.type == "unsubscribe":
                if match:  # like /u; an address that maps to no send is suppressed all the same, below
                    await ctx.events.write({**event, "method": provider, "source": source})
            else:
                await ctx.events.write({**event, "kind": row.kind, "reason": row.reason, "status": row.status,
                                        "smtp_code": row.smtp_code, "diagnostic": row.diagnostic, "source": source,
                                        "unmapped": match is None, **({"delayed": True} if row.delayed else {})})
            cause = SUPPRESS.get(row.type) or (f"bounce:{row.reason}" if row.kind == "hard" else None)
            if cause:  # soft bounces are left to the aggregate stage's count rule
                suppressions.append((bare_address(row.recipient), cause, match.campaign_id if match else SOURCE))
        if suppressions:
            await asyncio.get_running_loop().run_in_executor(None, suppress_all, ctx.suppressions, suppressions)
        await ctx.events.sync()
    except OSError:
        return answer(503, "try again later", **{"Retry-After": "5"})
    for row in rows:
        state.seen[event_id(provider, row)] = None
    while len(state.seen) > SEEN_KEPT:
        state.seen.popitem(last=False)
    return answer(200, "ok")


def suppress_all(log: SuppressionLog, lines: list[tuple[str, str, str]]) -> None:
    """A batch's suppressions with one fsync (a thousand hard bounces in one SendGrid post: not a thousand)."""
    for email, cause, source in lines:
        log.append(email, cause, source)
    with log.path.open("ab") as fh:
        os.fsync(fh.fileno())


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


async def ses(request: Request) -> Response:
    hooks = request.app.state.track.settings.webhooks
    if not hooks.ses:
        return answer(404, "not found")
    message = parsed(await request.body(), dict)
    if message is None:
        return answer(400, "malformed JSON: expected an SNS message object")
    try:
        await off_loop(request, state_of(request).sns.verify, message)
    except SnsRefused as refused:
        status = {"malformed": 400, "cert_url": 403, "cert_fetch": 503}.get(refused.cause, 401)
        return refuse(request, "ses", refused.cause, status, str(refused))
    if not hooks.ses_topic_allowed(str(message.get("TopicArn"))):
        return refuse(request, "ses", "topic", 403, "TopicArn is not in webhooks.ses_topic_arns")
    if message["Type"] == "SubscriptionConfirmation":
        try:
            await off_loop(request, state_of(request).sns.confirm, message)
        except SnsRefused as refused:
            return refuse(request, "ses", refused.cause, 403 if refused.cause == "subscribe_url" else 502, str(refused))
        return answer(200, "subscription confirmed")
    if message["Type"] != "Notification":
        return answer(200, "ok")
    notification = parsed(message["Message"].encode(), dict)
    if notification is None:
        return answer(400, "malformed JSON: the notification's Message is not an SES event object")
    return await record(request, "ses", ses_rows(notification, message["MessageId"]))


async def sendgrid(request: Request) -> Response:
    hooks = request.app.state.track.settings.webhooks
    if not hooks.sendgrid:
        return answer(404, "not found")
    body = await request.body()
    signature, timestamp = request.headers.get(SENDGRID_SIGNATURE), request.headers.get(SENDGRID_TIMESTAMP)
    if not signature or not timestamp:
        return refuse(request, "sendgrid", "missing", 401, f"no {SENDGRID_SIGNATURE} or {SENDGRID_TIMESTAMP} header")
    state = state_of(request)
    if state.sendgrid_key is None:
        key = serialization.load_der_public_key(base64.b64decode(hooks.sendgrid_public_key))
        if not isinstance(key, ec.EllipticCurvePublicKey):
            return answer(500, "webhooks.sendgrid_public_key is not an elliptic-curve key")
        state.sendgrid_key = key
    try:
        state.sendgrid_key.verify(base64.b64decode(signature, validate=True), timestamp.encode() + body,
                                  ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, binascii.Error, ValueError):
        return refuse(request, "sendgrid", "signature", 401, "bad SendGrid signature")
    events = parsed(body, list)
    if events is None:
        return answer(400, "malformed JSON: expected an array of SendGrid events")
    return await record(request, "sendgrid", sendgrid_rows(events))


async def postmark(request: Request) -> Response:
    hooks = request.app.state.track.settings.webhooks
    if not hooks.postmark:
        return answer(404, "not found")
    if not _basic_auth(request.headers.get("authorization", ""), hooks.postmark_username, hooks.postmark_password.reveal()):
        return refuse(request, "postmark", "credentials", 401, "wrong or missing credentials",
                      **{"WWW-Authenticate": 'Basic realm="mailflow webhooks"'})
    record_ = parsed(await request.body(), dict)
    if record_ is None:
        return answer(400, "malformed JSON: expected a Postmark webhook object")
    return await record(request, "postmark", postmark_rows(record_))


def _basic_auth(header: str, username: str, password: str) -> bool:
    scheme, _, encoded = header.partition(" ")
    try:
        given = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        given = b""
    user, _, secret = given.partition(b":")
    ok_user = hmac.compare_digest(user, username.encode())
    ok_secret = hmac.compare_digest(secret, password.encode())  # both compared, whatever the first says
    return scheme.lower() == "basic" and ok_user and ok_secret


async def mailgun(request: Request) -> Response:
    hooks = request.app.state.track.settings.webhooks
    if not hooks.mailgun:
        return answer(404, "not found")
    body = await request.body()
    payload = parsed(body, dict)
    if payload is None:
        return answer(400, "malformed JSON: expected a Mailgun webhook object")
    signed = payload.get("signature")
    signed = signed if isinstance(signed, dict) else {}
    timestamp, token, signature = (str(signed.get(k) or "") for k in ("timestamp", "token", "signature"))
    if not (timestamp and token and signature):
        return refuse(request, "mailgun", "missing", 401, "no signature {timestamp, token, signature}")
    expected = hmac.new(hooks.mailgun_signing_key.reveal().encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        return refuse(request, "mailgun", "signature", 401, "bad Mailgun signature")
    try:
        age = abs(time.time() - float(timestamp))
    except ValueError:
        age = float("inf")
    if age > hooks.mailgun_max_age:
        return refuse(request, "mailgun", "stale", 403, "the signature's timestamp is too old (or in the future)")
    state, digest = state_of(request), hashlib.sha256(body).digest()
    seen = state.mailgun_tokens.get(token)
    if seen is not None:  # a token signs once: the same body again is a retry, already written; another is forged
        if seen[1] == digest:
            return answer(200, "ok")
        return refuse(request, "mailgun", "replayed", 403, "this signature's token was used before")
    result = await record(request, "mailgun", mailgun_rows(payload.get("event-data")))
    if result.status_code == 200:
        state.mailgun_tokens[token] = (time.time(), digest)
        while state.mailgun_tokens and next(iter(state.mailgun_tokens.values()))[0] < time.time() - 2 * hooks.mailgun_max_age:
            state.mailgun_tokens.popitem(last=False)  # older tokens are refused as stale anyway
    return result


def webhook_routes() -> list[Route]:
    return [Route("/webhooks/ses", ses, methods=["POST"]), Route("/webhooks/sendgrid", sendgrid, methods=["POST"]),
            Route("/webhooks/postmark", postmark, methods=["POST"]), Route("/webhooks/mailgun", mailgun, methods=["POST"])]
