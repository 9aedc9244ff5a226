"""The studio's ASGI app: login routes, pages, its own static files; one context per process, made on start-up."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from mailflow.settings import Settings
from mailflow.tasks.studio.admin import admin_routes
from mailflow.tasks.studio.context import StudioContext
from mailflow.tasks.studio.login import login_routes
from mailflow.tasks.studio.page import FormTooLarge, headers, message, static
from mailflow.tasks.studio.pages import page_routes
from mailflow.tasks.studio.preview_page import preview_routes


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok\n", headers=headers())


async def too_large(request: Request, exc: Exception) -> Response:
    return message("Too large", str(exc), 413)


async def not_found(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 404)
    return message("Not found" if status == 404 else "Refused", "There is no such page here.", status)


def routes() -> list[Route]:
    """Every route; each page after login is wrapped in `require(role)` (tests/test_studio_access.py checks)."""
    return [*login_routes(), *page_routes(), *preview_routes(), *admin_routes(), Route("/static/{name}", static, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"])]


LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


def allowed_hosts(settings: Settings) -> list[str]:
    """Loopback names, and the host of `studio.public_url`: a page of another site that points its own name at
    127.0.0.1 (DNS rebinding) gets 400, not the login form. Serving others needs public_url, which says its name."""
    public = urlsplit(settings.studio.public_url).hostname if settings.studio.public_url else None
    return [*LOOPBACK, *([public] if public else [])]


def create_app(settings: Settings, clock: Callable[[], float] = time.time) -> Starlette:
    """`clock` (epoch seconds) drives session lifetimes, lockouts, login limits and TOTP checks: tests move it."""
    @asynccontextmanager
    async def lifespan(app: Starlette):
        app.state.studio = StudioContext.create(settings, clock)
        try:
            yield
        finally:
            app.state.studio.audit.close()
            if getattr(app.state, "frames", None) is not None:  # unsaved previews' template files
                app.state.frames.scratch.close()

    hosts = Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts(settings), www_redirect=False)
    return Starlette(routes=routes(), lifespan=lifespan, middleware=[hosts],
                     exception_handlers={FormTooLarge: too_large, 404: not_found, 405: not_found})
