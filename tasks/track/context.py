"""What every request handler of the service shares: settings, token signer, event log, campaigns, suppression log."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from mailflow.settings import Settings
from mailflow.tasks.compose.tokens import SendRef, TokenSigner, signer_from_settings
from mailflow.tasks.files.suppress import SuppressionLog
from mailflow.tasks.track.campaigns import CampaignFiles, CampaignIndex
from mailflow.tasks.track.events import EventLog
from mailflow.tasks.track.metrics import Metrics
from mailflow.tasks.track.privacy import ClientIp

USER_AGENT_CHARS = 512  # kept of a User-Agent: enough to tell clients and scanners apart, bounded per line
WRITER = "track"


@dataclass
class TrackContext:
    """Kept at `request.app.state.track`; one per worker process, made by `TrackContext.create` on start-up."""

    settings: Settings
    signer: TokenSigner
    events: EventLog
    campaigns: CampaignIndex
    metrics: Metrics
    client_address: ClientIp
    suppressions: SuppressionLog

    @classmethod
    def create(cls, settings: Settings) -> TrackContext:
        tracking = settings.tracking
        secret = tracking.secret.reveal()
        events = EventLog(settings.home, WRITER, rotate_seconds=tracking.log_rotate_seconds,
                          rotate_bytes=tracking.log_rotate_bytes, sync_seconds=tracking.log_sync_seconds)
        return cls(settings=settings, signer=signer_from_settings(tracking), events=events,
                   campaigns=CampaignIndex(settings.home), metrics=Metrics(settings.home, events),
                   client_address=ClientIp(tracking.ip, tracking.trusted_proxies, secret),
                   suppressions=SuppressionLog(settings.home, WRITER))

    def client_ip(self, request) -> str | None:
        """The client's address as the settings keep it (truncated, hashed, whole or None)."""
        return self.client_address(*self._peer(request))

    def client_key(self, request) -> str:
        """The client's whole address, for limits held in memory only (never logged): behind trusted
        proxies the client's, not the proxy's, whatever `tracking.ip` keeps in the logs."""
        address = self.client_address.origin(*self._peer(request))
        return "" if address is None else str(address)

    def _peer(self, request) -> tuple[str | None, str | None]:
        client = request.scope.get("client")
        forwarded = request.headers.get("x-forwarded-for") if self.client_address.trusted else None
        return client[0] if client else None, forwarded

    async def suppress(self, email: str, cause: str, source: str) -> None:
        """A line in this process's suppression log, fsynced before it returns (off the event loop):
        running senders read it within `send.suppression_refresh` seconds."""
        await asyncio.get_running_loop().run_in_executor(None, lambda: self.suppressions.append(email, cause, source, True))

    async def record(self, request, kind: str, campaign: CampaignFiles, ref: SendRef, *, link: int | None = None,
                     url: str | None = None, durable: bool = False, **extra) -> None:
        """The event of one request (DESIGN "Files between stages"); seconds since delivery are the
        aggregate stage's to derive, from the send ledger's time of the same recipient."""
        await self.events.write({
            "type": kind, "campaign_id": campaign.campaign_id, "subscriber_id": ref.subscriber_id,
            "variant": campaign.variant_name(ref.variant), "link": link, "url": url,
            "ip": self.client_ip(request), "user_agent": (request.headers.get("user-agent") or "")[:USER_AGENT_CHARS] or None,
            **extra,
        }, durable=durable)
