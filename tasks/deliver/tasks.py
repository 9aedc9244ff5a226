"""The deliver stage's Prefect parts: the global send rate, a Prefect rate limit."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from prefect.client.orchestration import get_client
from prefect.concurrency.asyncio import ConcurrencySlotAcquisitionError, rate_limit

from mailflow.errors import MailflowError
from mailflow.settings import Settings

RATE_LIMIT = "mailflow-send-rate"  # the Prefect global rate limit `mailflow init` creates


def prefect_rate_limit() -> Callable[[int], Awaitable[None]]:
    """Slots of the global rate limit from the Prefect API; a missing limit fails loudly."""
    async def acquire(slots: int) -> None:
        try:
            await rate_limit(RATE_LIMIT, occupy=slots, strict=True)
        except ConcurrencySlotAcquisitionError as exc:
            raise MailflowError(f"send.rate is set but the Prefect rate limit {RATE_LIMIT!r} is not usable "
                                f"({exc}): run `mailflow init` against this Prefect server") from None

    return acquire


def ensure_rate_limit(settings: Settings) -> str:
    """Create or update the global rate limit for `send.rate` (burst: one second's worth)."""
    if settings.send.rate <= 0:
        return "global send rate: off (send.rate = 0)"
    burst = max(settings.send.rate_batch, int(settings.send.rate))
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(RATE_LIMIT, burst, slot_decay_per_second=settings.send.rate)
    return f"global send rate: {settings.send.rate:g} msgs/s (Prefect rate limit {RATE_LIMIT!r})"
