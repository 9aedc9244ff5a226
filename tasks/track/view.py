"""The message in a browser (GET /v/<token>): re-rendered from the campaign's files and the recipient's chunk row."""

from __future__ import annotations

from markupsafe import escape
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from mailflow.errors import MailflowError
from mailflow.tasks.compose.compose import Composer
from mailflow.tasks.compose.render import RenderError
from mailflow.tasks.plan.campaign import CampaignSpec
from mailflow.tasks.send.chunk import variant_templates
from mailflow.tasks.track.htmlpage import message, not_found, view_page
from mailflow.tasks.track.visitor import VIEW, Visitor, visitor


async def view(request: Request) -> Response:
    who = await visitor(request, VIEW)
    if who is None:
        return not_found()
    try:
        # Compiling a campaign's templates costs tens of milliseconds the first time: off the loop
        return view_page(await run_in_threadpool(render_message, who))
    except (RenderError, MailflowError):
        return message("Cannot show this message", "This message cannot be shown in the browser right now.", 500)


def render_message(who: Visitor) -> str:
    """The recipient's HTML as it was sent: the same templates, variant and signed links (opens and
    clicks in the browser count as in the mail); a text-only campaign shows its text."""
    settings = who.ctx.settings
    spec = CampaignSpec.from_dict(who.campaign.spec)
    variant = who.variant if who.variant in spec.variant_names else spec.variant_names[0]
    templates = variant_templates(settings, spec, variant)
    composer = Composer(spec.for_variant(variant), templates, who.ctx.signer, settings.tracking.base_url,
                        settings.smtp.bounce_domain, None, variant=variant)
    helpers, _ = composer.helpers(who.subscriber_id)
    rendered = templates.render(who.row, helpers)
    if rendered.html is not None:
        return rendered.html
    return (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>{escape(rendered.subject)}</title></head>"
            f"<body><pre style=\"white-space:pre-wrap\">{escape(rendered.text)}</pre></body></html>")
