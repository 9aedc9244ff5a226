"""The transport of a campaign: a relay pool or direct-to-MX, its effective shaping, built into a shaped Dispatcher."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass

from mailflow.providers import ProviderLimits
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


@dataclass(frozen=True)
class Shaping:
    """How a transport's mail is shaped per provider group, and why: what the dispatcher applies and plan prints."""

    transport: str
    mode: str  # "providers": the provider table's limits; "none": only the global rate and the connections
    why: str
    limits: dict[str, ProviderLimits]

    def as_dict(self) -> dict:
        return {"transport": self.transport, "mode": self.mode, "why": self.why,
                "limits": {name: asdict(limits) for name, limits in self.limits.items()}}


def effective_shaping(settings: Settings, transport: str) -> Shaping:
    """Straight to MX the provider limits apply (politeness toward each provider's exchangers); a relay
    pool is not held to them by default, since the relay queues and shapes toward the providers itself."""
    if transport == MX:
        mode, table, capacity, recycle = settings.smtp.mx_shaping, settings.shaping, settings.smtp.mx_connections, None
        why = "direct to MX: politeness toward each provider" if mode == "providers" else "smtp.mx_shaping = \"none\""
    else:
        pool = settings.pool(transport)
        mode, table, capacity, recycle = pool.shaping, pool.limits, pool.connections * len(pool.relays), pool.max_messages
        why = (f"relay pool {transport!r}: a relay shapes for itself" if mode == "none"
               else f"relay pool {transport!r}: smtp.pools.{transport}.shaping = \"providers\"")
    if mode == "none":  # no rate, every connection open to any provider; a 421 still suspends for the back-off
        table = {name: ProviderLimits(capacity, recycle or limits.messages_per_connection, 0.0, limits.backoff)
                 for name, limits in table.items()}
    return Shaping(transport, mode, why, table)


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
                          effective_shaping(settings, MX).limits, gate, lane_per_domain=True, capacity=smtp.mx_connections, lanes=lanes)
    pool = settings.pool(transport)
    chooser = RelayChooser(pool.relays, pool.choose, settings.send.relay_failures, settings.send.relay_cooldown)
    return Dispatcher(RelayRoutes(chooser), Connections(factory, pool.connections), effective_shaping(settings, transport).limits, gate,
                      capacity=pool.connections * len(pool.relays), max_messages=pool.max_messages, lanes=lanes)
