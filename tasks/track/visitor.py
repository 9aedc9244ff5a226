"""Who a page's token names (campaign, recipient row), the events the pages write for them, and the pages' own state."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from mailflow.tasks.compose.tokens import BadToken
from mailflow.tasks.files.preferences import PreferenceReader
from mailflow.tasks.track.context import USER_AGENT_CHARS
from mailflow.tasks.track.forms import FormTooLarge, read_form
from mailflow.tasks.track.htmlpage import message, not_found
from mailflow.tasks.track.optin import ADDRESS_MAILS, ADDRESS_WINDOW, OptinStore, RateLimit

UNSUBSCRIBE, VIEW, PREFERENCES = "unsubscribe", "view", "preferences"  # token purposes (compose signs the first two)
_ONE_CLICKS_KEPT = 10_000


@dataclass(frozen=True)
class Visitor:
    """The recipient a valid token names, with the campaign's files and the row of its chunk file."""

    ctx: Any  # the service's TrackContext (request.app.state.track)
    ref: Any  # SendRef: campaign_digest, subscriber_id, purpose, variant
    campaign: Any  # CampaignFiles
    row: dict

    @property
    def subscriber_id(self) -> int:
        return self.ref.subscriber_id

    @property
    def email(self) -> str:
        return self.row.get("email", "")  # "" only for an unsubscribe whose chunk file is gone

    @property
    def variant(self) -> str | None:
        return self.campaign.variant_name(getattr(self.ref, "variant", None)) or self.row.get("variant")

    @property
    def lists(self) -> list[str]:
        """The lists the campaign was sent to, as its file named them."""
        return [str(name) for name in self.campaign.spec.get("lists") or ()]

    def url(self, path: str, purpose: str) -> str:
        """A link of this service for the same recipient, e.g. the preference centre from the unsubscribe page."""
        index = getattr(self.ref, "variant", None)  # the variant the recipient got travels on, as compose signs it
        token = self.ctx.signer.sign(self.campaign.campaign_id, self.subscriber_id, purpose,
                                     **({"variant": index} if index is not None else {}))
        return f"{self.ctx.settings.tracking.base_url.rstrip('/')}/{path}/{token}"

    async def record(self, request: Request, kind: str, **fields: Any) -> None:
        """A durable event of this recipient: on disk before the page answers."""
        await self.ctx.record(request, kind, self.campaign, self.ref, durable=True, **fields)


def client(request: Request) -> dict[str, str | None]:
    """The client's address (as the privacy setting keeps it) and user agent, for an event line."""
    ctx = request.app.state.track
    return {"ip": ctx.client_ip(request), "user_agent": request.headers.get("user-agent", "")[:USER_AGENT_CHARS] or None}


async def visitor(request: Request, purpose: str, row_required: bool = True) -> Visitor | None:
    """The recipient the path's token names, or None (forged or cut token, unknown campaign or recipient).
    With row_required=False a valid token whose row is gone (chunk files removed) still names its send."""
    ctx = request.app.state.track
    try:
        ref = ctx.signer.verify(request.path_params["token"], purpose)
    except BadToken:
        return None
    campaign = ctx.campaigns.find(ref.campaign_digest)
    if campaign is None:
        return None
    row = await ctx.campaigns.recipient(campaign, ref.subscriber_id)
    if row is None and row_required:
        return None
    return Visitor(ctx, ref, campaign, row or {})


async def posted_form(request: Request, purpose: str,
                      row_required: bool = True) -> tuple[Visitor, dict[str, list[str]]] | Response:
    """The recipient and the form a page's POST carries, or the answer to give instead (404, 413)."""
    who = await visitor(request, purpose, row_required)
    if who is None:
        return not_found()
    try:
        return who, await read_form(request)
    except FormTooLarge:
        return message("Too large", "That form is larger than this page sends.", 413)


async def unsubscribe_all(request: Request, who: Visitor, method: str, **fields: Any) -> None:
    """Suppress the address (the log running senders read) and log a durable unsubscribe, both before
    the answer. A repeated one-click POST (mail clients retry) writes nothing again."""
    state = pages_state(request)
    key = (who.campaign.campaign_id, who.subscriber_id)
    if method == "one_click" and key in state.one_clicks:
        return
    # source: the campaign, as the send stage writes its bounces (the log's existing convention). Without
    # the address (its chunk file gone) the durable event alone suppresses, by subscriber id, at aggregate
    if who.email:
        await who.ctx.suppress(who.email, "unsubscribe", who.campaign.campaign_id)
    await who.record(request, "unsubscribe", method=method, **fields)
    if method == "one_click":
        state.one_clicks[key] = None
        while len(state.one_clicks) > _ONE_CLICKS_KEPT:
            state.one_clicks.popitem(last=False)


@dataclass
class PagesState:
    preferences: PreferenceReader
    optins: OptinStore
    subscribe_limit: RateLimit
    one_clicks: OrderedDict
    address_limit: RateLimit = field(default_factory=lambda: RateLimit(ADDRESS_MAILS, ADDRESS_WINDOW))


def pages_state(request: Request) -> PagesState:
    """The pages' per-process state, made on first use beside the service's context."""
    state = getattr(request.app.state, "pages", None)
    if state is None:
        settings = request.app.state.track.settings
        tracking = settings.tracking
        state = PagesState(PreferenceReader(settings.home), OptinStore(settings.home),
                           RateLimit(tracking.subscribe_limit, tracking.subscribe_window), OrderedDict())
        request.app.state.pages = state
    return state
