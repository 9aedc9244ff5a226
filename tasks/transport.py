"""The transport of a campaign: a relay pool or direct-to-MX, built into a shaped Dispatcher."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from mailflow.errors import MailflowError
from mailflow.settings import Relay, Settings
from tasks.dispatch import Connections, Dispatcher, RelayRoutes
from tasks.shaping import GlobalGate, ProviderLane, RelayChooser, rendezvous
from tasks.smtp import Outcome
from tasks.smtpclient import PipeliningConnection

MX = "mx"
RATE_LIMIT = "mailflow-send-rate"  # the Prefect global rate limit `mailflow init` creates


class MxRoutes:
    """`transport: mx`: each domain's exchangers, best preference first, from DNS (cached by TTL),
    over opportunistic STARTTLS, from the domain's own sending IP when several are configured."""

    def __init__(self, router, port: int, sources: tuple[str, ...] = ()):
        self.router, self.port, self.sources = router, port, sources

    async def candidates(self, domain: str) -> list[Relay] | Outcome:
        route = await self.router.route(domain)
        if route.error is not None:
            return route.error.outcome()
        source = self.source_for(domain)
        return [Relay(address, self.port, tls="opportunistic", source=source) for _, address in route.candidates()]

    def source_for(self, domain: str) -> str:
        """A domain always sees the same sending IP (receivers keep reputation per IP)."""
        if not self.sources:
            return ""
        return max(self.sources, key=lambda ip: rendezvous(domain, ip))

    def failed(self, relay: Relay) -> None:
        pass  # the next exchanger is tried; DNS, not health, decides the order

    def worked(self, relay: Relay) -> None:
        pass


def dispatcher_for(settings: Settings, transport: str,
                   acquire: Callable[[int], Awaitable[None]] | None = None,
                   lanes: dict[str, ProviderLane] | None = None) -> Dispatcher:
    """The dispatcher of a campaign's transport. `acquire(n)` takes n slots of the global rate."""
    gate = GlobalGate(acquire if settings.send.rate > 0 else None, settings.send.rate_batch)
    smtp = settings.smtp

    def factory(relay: Relay, max_messages: int) -> PipeliningConnection:
        return PipeliningConnection(relay, smtp.helo, smtp.timeout, max_messages)

    if transport == MX:
        from tasks.dns import make_resolver
        from tasks.mx import MxRouter

        resolver = make_resolver(list(settings.dns.nameservers) or None, settings.dns.port, settings.dns.timeout)
        router = MxRouter(resolver, port=smtp.mx_port, allow_private=smtp.allow_private_mx)
        return Dispatcher(MxRoutes(router, smtp.mx_port, smtp.mx_sources), Connections(factory, smtp.mx_connections, total=smtp.mx_connections),
                          settings.shaping, gate, lane_per_domain=True, capacity=smtp.mx_connections, lanes=lanes)
    pool = settings.pool(transport)
    chooser = RelayChooser(pool.relays, pool.choose, settings.send.relay_failures, settings.send.relay_cooldown)
    return Dispatcher(RelayRoutes(chooser), Connections(factory, pool.connections), settings.shaping, gate,
                      capacity=pool.connections * len(pool.relays), max_messages=pool.max_messages, lanes=lanes)


def prefect_rate_limit() -> Callable[[int], Awaitable[None]]:
    """Slots of the global rate limit from the Prefect API; a missing limit fails loudly."""
    from prefect.concurrency.asyncio import ConcurrencySlotAcquisitionError, rate_limit

    async def acquire(slots: int) -> None:
        try:
            await rate_limit(RATE_LIMIT, occupy=slots, strict=True)
        except ConcurrencySlotAcquisitionError as exc:
            raise MailflowError(f"send.rate is set but the Prefect rate limit {RATE_LIMIT!r} is not usable "
                                f"({exc}): run `mailflow init` against this Prefect server") from None

    return acquire


def ensure_rate_limit(settings: Settings) -> str:
    """Create or update the global rate limit for `send.rate` (burst: one second's worth)."""
    from prefect.client.orchestration import get_client

    if settings.send.rate <= 0:
        return "global send rate: off (send.rate = 0)"
    burst = max(settings.send.rate_batch, int(settings.send.rate))
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(RATE_LIMIT, burst, slot_decay_per_second=settings.send.rate)
    return f"global send rate: {settings.send.rate:g} msgs/s (Prefect rate limit {RATE_LIMIT!r})"
