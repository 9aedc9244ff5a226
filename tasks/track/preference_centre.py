"""The preference centre (GET/POST /p/<token>): lists, frequency, unsubscribe from all."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from mailflow.tasks.track.forms import one
from mailflow.tasks.track.htmlpage import not_found, page, unavailable
from mailflow.tasks.track.visitor import PREFERENCES, Visitor, pages_state, posted_form, unsubscribe_all, visitor

FREQUENCIES = (("all", "Everything we send"), ("weekly", "At most once a week"), ("monthly", "At most once a month"))


async def preferences_page(request: Request) -> Response:
    who = await visitor(request, PREFERENCES)
    if who is None:
        return not_found()
    # The service never opens the warehouse: the state is what the aggregate stage last published
    current = await run_in_threadpool(pages_state(request).preferences.lookup, who.subscriber_id)
    chosen = current.lists if current is not None else ()
    frequency = (current.frequency if current is not None else None) or "all"
    return _page(request, who, chosen, frequency, known=current is not None)


def _offered(request: Request, who: Visitor, current: tuple[str, ...] = ()) -> list[str]:
    """The campaign's lists, the public ones and those the subscriber is on, each once."""
    public = request.app.state.track.settings.tracking.public_lists
    return list(dict.fromkeys([*who.lists, *public, *current]))


def _page(request: Request, who: Visitor, chosen, frequency: str, known: bool, saved: bool = False) -> Response:
    return page("preferences.html.j2", email=who.email, lists=_offered(request, who, tuple(chosen)), chosen=set(chosen),
                frequency=frequency, frequencies=FREQUENCIES, known=known, saved=saved)


async def preferences_post(request: Request) -> Response:
    posted = await posted_form(request, PREFERENCES)
    if isinstance(posted, Response):
        return posted
    who, fields = posted
    if one(fields, "unsubscribe_all", 8):
        try:
            await unsubscribe_all(request, who, "preferences")
        except OSError:
            return unavailable()
        return page("unsubscribed.html.j2", email=who.email, lists=[], preferences_url="")
    current = await run_in_threadpool(pages_state(request).preferences.lookup, who.subscriber_id)
    offered = _offered(request, who, current.lists if current is not None else ())
    chosen = [name for name in dict.fromkeys(fields.get("list", [])) if name in offered]
    frequency = one(fields, "frequency", 16)
    frequency = frequency if frequency in dict(FREQUENCIES) else None
    try:
        await who.record(request, "preferences", offered=offered, lists=chosen, frequency=frequency)
    except OSError:
        return unavailable()
    return _page(request, who, chosen, frequency or "all", known=True, saved=True)
