"""The transport of a campaign: a relay pool or direct-to-MX, built into a shaped Dispatcher."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from mailflow.settings import Relay, Settings
from mailflow.tasks.deliver.client import PipeliningConnection
from mailflow.tasks.deliver.dispatch import Connections, Dispatcher, RelayRoutes
from mailflow.tasks.deliver.shaping import GlobalGate, ProviderLane, RelayChooser, rendezvous
from mailflow.tasks.deliver.smtp import Outcome

MX = "mx"


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
        from mailflow.tasks.core.dns import make_resolver
        from mailflow.tasks.deliver.mx import MxRouter

        resolver = make_resolver(list(settings.dns.nameservers) or None, settings.dns.port, settings.dns.timeout)
        router = MxRouter(resolver, port=smtp.mx_port, allow_private=smtp.allow_private_mx)
        return Dispatcher(MxRoutes(router, smtp.mx_port, smtp.mx_sources), Connections(factory, smtp.mx_connections, total=smtp.mx_connections),
                          settings.shaping, gate, lane_per_domain=True, capacity=smtp.mx_connections, lanes=lanes)
    pool = settings.pool(transport)
    chooser = RelayChooser(pool.relays, pool.choose, settings.send.relay_failures, settings.send.relay_cooldown)
    return Dispatcher(RelayRoutes(chooser), Connections(factory, pool.connections), settings.shaping, gate,
                      capacity=pool.connections * len(pool.relays), max_messages=pool.max_messages, lanes=lanes)
