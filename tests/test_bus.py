"""Fan-out of committed events: a slow subscriber is cut off and told to resync instead of
holding up the others."""

from __future__ import annotations

import asyncio

from ccd import bus as bus_module
from ccd.bus import Bus, event_frame
from ccd.model import Event


def event(run: str, n: int) -> tuple[int, Event]:
    return n, Event(id=n, run_id=run, job="a", state="running", progress=n % 100, time=float(n))


def test_each_subscriber_gets_its_runs_events_in_order() -> None:
    async def scenario() -> None:
        bus = Bus()
        everything, only_r1 = bus.subscribe(), bus.subscribe("r1")
        bus.publish([event("r1", 1), event("r2", 2), event("r1", 3)])
        assert [everything.queue.get_nowait()[0] for _ in range(3)] == [1, 2, 3]
        assert everything.queue.empty()
        assert event_frame(event("r1", 1)[1]).startswith(b"id: 1\nevent: job\ndata: {")
        assert [only_r1.queue.get_nowait()[0] for _ in range(2)] == [1, 3]
        assert bus.last_id == 3 and bus.published == 3

    asyncio.run(scenario())


def test_a_subscriber_that_falls_behind_overflows_without_slowing_others() -> None:
    async def scenario() -> None:
        bus_module.QUEUE_LIMIT = 5
        try:
            bus = Bus()
            slow, fast = bus.subscribe(), bus.subscribe()
            for n in range(1, 13):
                bus.publish([event("r", n)])
                fast.queue.get_nowait()  # keeps up
            assert slow.overflowed and not fast.overflowed
            assert slow.queue.qsize() == 5  # bounded: never more than the limit
            bus.unsubscribe(slow)
            assert bus.subscribers == 1
        finally:
            bus_module.QUEUE_LIMIT = 10_000

    asyncio.run(scenario())
