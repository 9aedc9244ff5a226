"""The service's ASGI app: open pixel, clicks and signed redirects, health and metrics, with the pages' routes beside them."""

from __future__ import annotations

import asyncio
import base64
from contextlib import asynccontextmanager, suppress

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from mailflow.settings import Settings
from mailflow.tasks.compose.compose import CLICK, OPEN
from mailflow.tasks.compose.tokens import BadToken, SendRef
from mailflow.tasks.compose.tracking import verify_redirect
from mailflow.tasks.track.campaigns import CampaignFiles
from mailflow.tasks.track.context import TrackContext
from mailflow.tasks.track.guard import Guard
from mailflow.tasks.track.pages import page_routes
from mailflow.tasks.track.subscribe import subscribe_routes
from mailflow.tasks.track.webhooks import webhook_routes

GIF = base64.b64decode("R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==")  # 43 bytes: 1x1, transparent
NO_STORE = {"Cache-Control": "no-store"}  # every fetch reaches us, so every open and click is seen
PUBLISH_SECONDS = 1.0  # how stale another worker's counters in /metrics may be


def not_found() -> Response:
    return PlainTextResponse("not found\n", status_code=404, headers=NO_STORE)


def unavailable() -> Response:
    """An event that could not be written is not acknowledged: the client (or its proxy) may try again."""
    return PlainTextResponse("try again later\n", status_code=503, headers={**NO_STORE, "Retry-After": "5"})


def send_of(ctx: TrackContext, token: str, purpose: str) -> tuple[SendRef, CampaignFiles] | None:
    """The send a token names and its campaign's files; None for a token this service must not honour."""
    try:
        ref = ctx.signer.verify(token, purpose)
    except BadToken:
        return None
    campaign = ctx.campaigns.find(ref.campaign_digest)
    return None if campaign is None else (ref, campaign)


async def open_pixel(request: Request) -> Response:
    ctx: TrackContext = request.app.state.track
    found = send_of(ctx, request.path_params["token"], OPEN)
    if found is None:
        return not_found()
    ref, campaign = found
    if request.method == "GET":  # a HEAD fetched no image: nobody saw it
        try:
            await ctx.record(request, "open", campaign, ref)
        except OSError:
            return unavailable()
    return Response(GIF, media_type="image/gif", headers=NO_STORE)


async def click(request: Request) -> Response:
    ctx: TrackContext = request.app.state.track
    found, index = send_of(ctx, request.path_params["token"], CLICK), request.path_params["n"]
    if found is None or index >= len(found[1].links):
        return not_found()  # only URLs in the campaign's own table: never an open redirect
    ref, campaign = found
    return await _redirect(request, ctx, campaign, ref, index, campaign.links[index])


async def signed_redirect(request: Request) -> Response:
    ctx: TrackContext = request.app.state.track
    try:
        ref, url = verify_redirect(ctx.signer, request.scope["query_string"].decode("latin-1"))
    except BadToken:
        return not_found()
    campaign = ctx.campaigns.find(ref.campaign_digest)
    if campaign is None:
        return not_found()
    return await _redirect(request, ctx, campaign, ref, None, url)


async def _redirect(request: Request, ctx: TrackContext, campaign: CampaignFiles, ref: SendRef, index: int | None,
                    url: str) -> Response:
    variant = campaign.variant_name(ref.variant)
    if request.method == "GET":  # link checkers that only ask HEAD are told where it goes, and not counted
        try:
            await ctx.record(request, "click", campaign, ref, link=index, url=url)
        except OSError:
            return unavailable()
    return RedirectResponse(campaign.tracked_url(url, variant), status_code=302, headers=NO_STORE)


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok\n", headers=NO_STORE)


async def metrics(request: Request) -> Response:
    text = request.app.state.track.metrics.render()
    return PlainTextResponse(text, media_type="text/plain; version=0.0.4", headers=NO_STORE)


def hot_routes() -> list[Route]:
    return [Route("/o/{token}.gif", open_pixel, methods=["GET"]),
            Route("/c/{token}/{n:int}", click, methods=["GET"]),
            Route("/r", signed_redirect, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"])]


def create_app(settings: Settings, sns_fetch=None) -> Starlette:
    """The app of one worker process; its context (event log, campaigns, counters) is made on start-up.
    `sns_fetch(url) -> bytes` replaces the https GET of SNS certificates and confirmations (tests)."""
    @asynccontextmanager
    async def lifespan(app: Starlette):
        ctx = app.state.track = TrackContext.create(settings)
        ctx.events.start()
        publisher = asyncio.get_running_loop().create_task(_publish(ctx))
        try:
            yield
        finally:
            publisher.cancel()
            with suppress(asyncio.CancelledError):
                await publisher
            await ctx.events.close()  # everything written is on disk before the process ends
            hooks = getattr(app.state, "webhooks", None)
            if hooks is not None:
                hooks.pool.shutdown(wait=False)
            ctx.metrics.withdraw()
            ctx.campaigns.close()

    routes = [*hot_routes(), *page_routes(), *subscribe_routes(), *webhook_routes()]  # POST /u (RFC 8058 one-click) is the pages'
    app = Starlette(routes=routes, middleware=[Middleware(Guard)], lifespan=lifespan)
    app.state.sns_fetch = sns_fetch
    return app


async def _publish(ctx: TrackContext) -> None:
    while True:
        try:
            ctx.metrics.publish()
        except OSError:
            ctx.metrics.errors += 1
        await asyncio.sleep(PUBLISH_SECONDS)
