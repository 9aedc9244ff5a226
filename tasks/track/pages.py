"""The service's pages for people: unsubscribe (and RFC 8058 one-click), view in browser, preference centre."""

from __future__ import annotations

from starlette.routing import Route

from mailflow.tasks.track.preference_centre import preferences_page, preferences_post
from mailflow.tasks.track.unsubscribe import unsubscribe_page, unsubscribe_post
from mailflow.tasks.track.view import view


def page_routes() -> list[Route]:
    return [
        Route("/u/{token}", unsubscribe_page, methods=["GET"]),
        Route("/u/{token}", unsubscribe_post, methods=["POST"]),
        Route("/v/{token}", view, methods=["GET"]),
        Route("/p/{token}", preferences_page, methods=["GET"]),
        Route("/p/{token}", preferences_post, methods=["POST"]),
    ]
