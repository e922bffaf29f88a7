"""The `hosts` notice: how the daemon reaches its remote hosts, pushed to the global event
stream (the page's Hosts view) when it changes.

Executors call `changed` when a link connects or is lost; a host that flaps, or many links
changing at once (a network cut), would send one notice each, so changes are coalesced:
a notice goes out at once after a quiet spell, else `gap` after the previous one, and a
burst costs one notice. What changes without a call (round-trip time, channels, jobs,
command counts) is refreshed every `every` seconds, but only while some link exists and
someone follows the global stream: an idle daemon, or one with only local jobs, sends
nothing. Each notice carries the whole list (a few hosts), so a client just replaces
what it shows and a missed notice costs nothing but freshness; notices have no journal id.

Nothing here waits: a notice is built on the event loop from memory (`Hosts.links`) and
handed to the bus, which never blocks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import msgspec

from ccd import shapes
from ccd.bus import Bus
from ccd.hosts import Hosts

GAP = 0.2  # seconds between two notices, at least
EVERY = 2.0  # seconds between refreshes while links exist

CallLater = Callable[[float, Callable[[], None]], asyncio.TimerHandle]


class HostsFeed:
    """Sends the `hosts` notice for one `Hosts` on one `Bus`."""

    def __init__(self, hosts: Hosts, bus: Bus, gap: float = GAP, every: float = EVERY,
                 clock: Callable[[], float] | None = None,
                 call_later: CallLater | None = None) -> None:
        loop = asyncio.get_running_loop()
        self._hosts = hosts
        self._bus = bus
        self._gap = gap
        self._every = every
        self._clock = clock or loop.time  # the timers' clock, so they agree
        self._call_later = call_later or loop.call_later
        self._pending: asyncio.TimerHandle | None = None
        self._last = float("-inf")  # when the last notice went out
        self.sent = 0

    def hosts(self) -> list[shapes.Host]:
        """Every link of every executor now, as the API shows it."""
        return [shapes.Host.of(link) for link in self._hosts.links()]

    def changed(self) -> None:
        """A link changed (Hosts.on_change): a notice soon, one for a whole burst."""
        if self._pending is None:
            wait = max(0.0, self._last + self._gap - self._clock())
            self._pending = self._call_later(wait, self._send)

    async def refresh_forever(self) -> None:
        """Every `every` seconds, a notice with fresh counters while it has readers."""
        while True:
            await asyncio.sleep(self._every)
            if self._bus.notice_subscribers and self._hosts.links():
                self.changed()

    def close(self) -> None:
        """Send nothing more."""
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None

    def _send(self) -> None:
        self._pending = None
        self._last = self._clock()
        if self._bus.notice_subscribers:
            self._bus.notice("hosts", {"hosts": msgspec.to_builtins(self.hosts())})
            self.sent += 1
