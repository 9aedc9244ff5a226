"""Regression (review of the sending engine): smtp.mx_connections caps the sessions a sending process
holds open, over all exchangers (idle ones included: the oldest idle one is closed to make room)."""

import asyncio

from mailflow.settings import Relay
from mailflow.tasks.deliver.dispatch import Connections


class Session:
    open_now = peak = 0

    def __init__(self, relay, max_messages):
        Session.open_now += 1
        Session.peak = max(Session.peak, Session.open_now)

    async def send(self, envelope):
        await asyncio.sleep(0)

    async def close(self):
        Session.open_now -= 1


def test_sessions_over_all_exchangers_stay_under_the_total():
    connections = Connections(Session, cap=4, total=4)

    async def one(i):
        async with connections.checkout(Relay(f"127.0.1.{i % 60 + 1}", 25), 100) as conn:
            await conn.send(None)

    async def main():
        await asyncio.gather(*(one(i) for i in range(300)))
        await connections.close()

    asyncio.run(main())
    assert Session.peak == 4 and Session.open_now == 0
