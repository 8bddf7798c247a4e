import asyncio

import pytest

from callcenter.events import EventBus


async def test_subscribers_get_events_of_the_kind_they_wait_for() -> None:
    bus = EventBus()
    async with bus.subscribe() as sub:
        bus.publish("text")
        bus.publish(1)
        bus.publish(2)
        assert await sub.wait_for(int, 1, lambda n: n > 1) == 2
    bus.publish(3)  # nobody listens any more: no error, nothing kept


async def test_slow_subscriber_loses_oldest_not_producer() -> None:
    bus = EventBus(limit=2)
    async with bus.subscribe() as sub:
        for n in range(5):
            bus.publish(n)
        assert sub.dropped == 3
        assert await sub.get() == 3
    with pytest.raises(TimeoutError):
        async with bus.subscribe() as idle:
            await idle.wait_for(int, 0.05)
    await asyncio.sleep(0)
