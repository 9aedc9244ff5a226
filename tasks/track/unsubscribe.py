"""The unsubscribe page (GET /u/<token>) and its POST: RFC 8058 one-click or the page's form."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from mailflow.tasks.track.forms import one
from mailflow.tasks.track.htmlpage import not_found, page, unavailable
from mailflow.tasks.track.visitor import PREFERENCES, UNSUBSCRIBE, Visitor, posted_form, unsubscribe_all, visitor

REASONS = (("too_many", "Too many emails"), ("not_relevant", "The content is not relevant to me"),
           ("never_signed_up", "I never signed up for this"), ("other", "Something else"))
REASON_LIMIT = 500  # characters of free text kept


async def unsubscribe_page(request: Request) -> Response:
    who = await visitor(request, UNSUBSCRIBE)
    return not_found() if who is None else _form(who)


def _form(who: Visitor, error: str = "", status_code: int = 200) -> Response:
    return page("unsubscribe.html.j2", status_code, email=who.email, campaign_name=who.campaign.spec.get("name", ""),
                lists=who.lists, reasons=REASONS, reason_limit=REASON_LIMIT, error=error,
                preferences_url=who.url("p", PREFERENCES))


async def unsubscribe_post(request: Request) -> Response:
    """One-click (RFC 8058: `List-Unsubscribe=One-Click`, no cookie, 200 and never a redirect) or the form.

    Any POST without the form's `scope` field counts as one-click: a mail client that posts an
    empty or odd body still means "unsubscribe me", and refusing it would keep mailing someone who asked to stop.
    """
    posted = await posted_form(request, UNSUBSCRIBE, row_required=False)  # an unsubscribe is never refused for want of a row
    if isinstance(posted, Response):
        return posted
    who, fields = posted
    scope = one(fields, "scope", 8) if who.row else None
    reason = one(fields, "reason", 32)
    details = {"reason": reason if reason in dict(REASONS) else None, "reason_text": one(fields, "reason_text", REASON_LIMIT)}
    if scope == "lists":
        chosen = [name for name in dict.fromkeys(fields.get("list", [])) if name in who.lists]
        if not chosen:
            return _form(who, "Choose at least one list, or unsubscribe from all.", 400)
        # Leaving some lists is no global suppression: the aggregate stage removes the memberships
        try:
            await who.record(request, "list_unsubscribe", lists=chosen, **details)
        except OSError:
            return unavailable()
        return page("unsubscribed.html.j2", email=who.email, lists=chosen, preferences_url=who.url("p", PREFERENCES))
    try:
        if scope == "all":
            await unsubscribe_all(request, who, "form", **details)
        else:
            await unsubscribe_all(request, who, "one_click")
    except OSError:
        return unavailable()  # not acknowledged, so the mail client (or the person) tries again
    return page("unsubscribed.html.j2", email=who.email, lists=[], preferences_url="")
