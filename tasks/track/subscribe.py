"""Public subscription with double opt-in: POST /s/<list> from an HTML form, GET /s/confirm/<token> from the mail."""

from __future__ import annotations

import logging
from datetime import timedelta

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mailflow.settings import Settings
from mailflow.tasks.compose.message import Envelope
from mailflow.tasks.track.forms import FormTooLarge, one, read_form
from mailflow.tasks.track.htmlpage import message, not_found, unavailable
from mailflow.tasks.track.optin import (
    EMAIL_LIMIT,
    NAME_LIMIT,
    VERSION_LIMIT,
    Claim,
    InvalidAddress,
    canonical_address,
    confirm_token,
    confirmation_envelope,
    send_confirmation,
)
from mailflow.tasks.track.visitor import client, pages_state

HONEYPOT = "website"  # a field people never see (the form hides it) and form-filling bots rarely leave empty
log = logging.getLogger("mailflow.track")


def subscribe_routes() -> list[Route]:
    return [
        Route("/s/confirm/{token}", confirm, methods=["GET"]),
        Route("/s/{list}", subscribe, methods=["POST"]),
    ]


def _check_inbox() -> Response:
    # The one answer for every address, new, known or a bot's: nothing here tells whether one is subscribed
    return message("Check your inbox", "We have sent you an email with a link: open it to confirm your subscription.")


async def subscribe(request: Request) -> Response:
    ctx = request.app.state.track
    settings: Settings = ctx.settings
    list_name = request.path_params["list"]
    if list_name not in settings.tracking.public_lists:
        return not_found()
    state = pages_state(request)
    who = client(request)
    if not state.subscribe_limit.allow(ctx.client_key(request)):
        return message("Too many requests", "Please try again in a few minutes.", 429)
    try:
        fields = await read_form(request)
    except FormTooLarge:
        return message("Too large", "That form is larger than a subscription form sends.", 413)
    if one(fields, HONEYPOT, 200):
        return _check_inbox()  # a bot: told what a person is told, and nothing stored or sent
    try:
        email, utf8 = canonical_address(one(fields, "email", EMAIL_LIMIT + 1))
    except InvalidAddress:
        return message("Not an email address", "Please go back and check the address you typed.", 400)
    if not state.address_limit.allow(email.lower()):
        return _check_inbox()  # the same answer, nothing stored or sent: whether mail went out is not told
    form_version = one(fields, "form_version", VERSION_LIMIT)
    try:
        optin = await run_in_threadpool(state.optins.create, email, one(fields, "first_name", NAME_LIMIT), list_name,
                                        form_version, who["ip"], timedelta(hours=settings.tracking.optin_hours))
        # No address in this line: the consent's details are in the pending opt-in until it is confirmed
        await ctx.events.write({"type": "optin_pending", "list": list_name, "optin": f"{optin.optin_id:016x}",
                                "form_version": form_version, **who}, durable=True)
    except OSError:
        return unavailable()
    url = f"{settings.tracking.base_url.rstrip('/')}/s/confirm/{confirm_token(ctx.signer, optin)}"
    envelope = confirmation_envelope(settings, optin, url, utf8)
    # Sent after the answer: a slow relay neither delays it nor shows in its timing
    return _check_inbox_with(BackgroundTask(_send, settings, envelope, optin.optin_id))


def _check_inbox_with(task: BackgroundTask) -> Response:
    response = _check_inbox()
    response.background = task
    return response


async def _send(settings: Settings, envelope: Envelope, optin_id: int) -> None:
    outcome = await send_confirmation(settings, envelope)
    if outcome.status != "delivered":
        log.warning("opt-in %016x: the confirmation mail was not sent: %s %s", optin_id, outcome.status, outcome.detail)


async def confirm(request: Request) -> Response:
    ctx = request.app.state.track
    if request.method == "HEAD":  # a link checker's HEAD (Starlette answers HEAD on GET routes) is no consent
        return message("Confirm your subscription", "Open this link in a browser to confirm your subscription.")
    store = pages_state(request).optins
    claim, optin = await run_in_threadpool(store.claim, ctx.signer, request.path_params["token"])
    if claim is Claim.UNKNOWN or optin is None:
        return not_found()
    common = {"list": optin.list, "optin": f"{optin.optin_id:016x}", "form_version": optin.form_version}
    if claim is Claim.EXPIRED:
        try:
            await ctx.events.write({"type": "optin_expired", **common, **client(request)}, durable=True)
        except OSError:
            pass  # the link has expired all the same: only the log of it is missing
    if claim in (Claim.EXPIRED, Claim.STALE):
        return message("This link has expired", "Confirmation links work for a limited time. Please subscribe again "
                       "to get a new one.", 410)
    if claim is Claim.CONFIRMED:
        # The consent record: when the form was sent and from where, when confirmed and from where,
        # the form's text version. The address travels in this line only: the aggregate stage needs it.
        event = {"type": "optin_confirmed", **common, "email": optin.email, "first_name": optin.first_name,
                 "consented_at": optin.requested_at, "form_ip": optin.ip, "source": "form", **client(request)}
        try:
            await ctx.events.write(event, durable=True)
        except OSError:
            await run_in_threadpool(store.unclaim, optin)  # not recorded: the link must work again
            return unavailable()
    return message("Subscription confirmed", f"Thank you: you are subscribed to {optin.list}.")
