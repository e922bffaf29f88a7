"""In-process fan-out of committed events to subscribers (SSE clients, watchers).

Events arrive here only after the store committed them, so every event a client sees has
its journal id and can be replayed from the database. Each subscriber has a bounded
queue: a client that falls too far behind is marked `overflowed` and told to resync from
the journal, instead of slowing the scheduler or the other clients.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

import msgspec

from ccd.model import Event

QUEUE_LIMIT = 10_000


def event_frame(e: Event) -> bytes:
    """One server-sent event, encoded once and sent to every subscriber as it is."""
    kind = b"job" if e.job is not None else b"run"
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (e.id, kind, msgspec.json.encode(e))


@dataclass(eq=False)
class Subscription:
    """One subscriber's queue; `run_id` None means every run."""

    run_id: str | None
    queue: asyncio.Queue[tuple[int, Event | None, bytes]] = field(
        default_factory=lambda: asyncio.Queue(QUEUE_LIMIT))
    overflowed: bool = False


class Bus:
    """Subscribers and the events they get."""

    def __init__(self) -> None:
        self._subscribers: set[Subscription] = set()
        self.published = 0
        self.last_id = 0

    def subscribe(self, run_id: str | None = None) -> Subscription:
        sub = Subscription(run_id)
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subscribers.discard(sub)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    @property
    def notice_subscribers(self) -> int:
        """Subscribers of the global stream: those a notice reaches."""
        return sum(1 for sub in self._subscribers if sub.run_id is None)

    def notice(self, kind: str, data: dict[str, object]) -> None:
        """A change outside the journal (a workflow stored or deleted) for every client of
        the global stream. It has no id: reconnecting clients reload rather than replay."""
        frame = f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()
        for sub in self._subscribers:
            if sub.run_id is None and not sub.overflowed:
                try:
                    sub.queue.put_nowait((0, None, frame))
                except asyncio.QueueFull:
                    sub.overflowed = True

    def publish(self, batch: list[tuple[int, Event]]) -> None:
        """Hand a committed batch to every subscriber (call on the event loop's thread)."""
        self.published += len(batch)
        if batch:
            self.last_id = max(self.last_id, batch[-1][0])
        if not self._subscribers:
            return
        frames = [(i, e, event_frame(e)) for i, e in batch]  # encoded once for everyone
        for sub in self._subscribers:
            if sub.overflowed:
                continue
            for item in frames:
                if sub.run_id is not None and item[1].run_id != sub.run_id:
                    continue
                try:
                    sub.queue.put_nowait(item)
                except asyncio.QueueFull:
                    sub.overflowed = True
                    break
