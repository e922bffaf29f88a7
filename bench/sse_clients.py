"""Many server-sent-event clients of ccd in one asyncio process, for bench/daemon.py.

usage: python bench/sse_clients.py SOCKET N OUT.json [--timeout S]

Each of N clients follows /api/v1/events over the daemon's Unix socket from the moment it
connects until it has seen a run end (a `run` event in a final state). Told to `resync`,
a client counts it and reconnects with Last-Event-ID, as a real client would. Prints
`ready` once every client has its response headers; writes, per client, the event ids it
received and each event's delay (receipt time - the event's own time) to OUT.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

FINAL = ("done", "failed", "cancelled")


@dataclass(slots=True)
class Sse:
    """One server-sent event: its id (None for a resync), name and decoded data."""

    id: int | None
    event: str
    data: dict[str, Any]


class SseParser:
    """Turns the lines of an event stream into events, one line at a time."""

    def __init__(self) -> None:
        self._id: int | None = None
        self._event = "message"
        self._data = ""

    def feed(self, line: str) -> Sse | None:
        """Take one line (without its end); returns the event a blank line completes."""
        if line.startswith("id:"):
            self._id = int(line[3:])
        elif line.startswith("event:"):
            self._event = line[6:].strip()
        elif line.startswith("data:"):
            self._data += line[5:].strip()
        elif not line and self._data:
            out = Sse(self._id, self._event, json.loads(self._data))
            self._id, self._event, self._data = None, "message", ""
            return out
        return None


@dataclass
class Client:
    """What one client received."""

    ids: list[int] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)  # seconds, receipt - event time
    resyncs: int = 0
    ended: bool = False  # saw the run end
    last_receipt: float = 0.0  # time.time() of the last event
    error: str = ""


async def follow(http: httpx.AsyncClient, client: Client, connected: asyncio.Event) -> None:
    """Follow /api/v1/events until a run ends; reconnect after a resync."""
    after: int | None = None
    while True:
        headers = {"Accept": "text/event-stream"}
        if after is not None:
            headers["Last-Event-ID"] = str(after)
        async with http.stream("GET", "/api/v1/events", headers=headers) as response:
            response.raise_for_status()
            connected.set()
            parser = SseParser()
            async for line in response.aiter_lines():
                e = parser.feed(line)
                if e is None:
                    continue
                if e.event == "resync":
                    client.resyncs += 1
                    break
                assert e.id is not None
                now = time.time()
                client.ids.append(e.id)
                client.delays.append(round(now - e.data["time"], 6))
                client.last_receipt = now
                after = e.id
                if e.event == "run" and e.data["state"] in FINAL:
                    client.ended = True
                    return


async def run_clients(socket: str, n: int, timeout: float) -> list[Client]:
    """N clients until each has seen a run end, or `timeout` seconds."""
    clients = [Client() for _ in range(n)]
    connected = [asyncio.Event() for _ in range(n)]
    transport = httpx.AsyncHTTPTransport(uds=socket, limits=httpx.Limits(max_connections=n))
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost",
                                 timeout=httpx.Timeout(30, read=None)) as http:

        async def one(i: int) -> None:
            try:
                await follow(http, clients[i], connected[i])
            except (httpx.HTTPError, ValueError, AssertionError) as e:
                clients[i].error = f"{type(e).__name__}: {e}"
                connected[i].set()

        async def announce() -> None:
            for c in connected:
                await c.wait()
            print("ready", flush=True)

        try:
            async with asyncio.timeout(timeout), asyncio.TaskGroup() as group:
                group.create_task(announce())
                for i in range(n):
                    group.create_task(one(i))
        except TimeoutError:
            for c in clients:
                if not c.ended and not c.error:
                    c.error = f"no run end within {timeout:g} s"
    return clients


def main() -> None:
    """Parse the arguments, run the clients, write what they received."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("socket")
    p.add_argument("n", type=int)
    p.add_argument("out")
    p.add_argument("--timeout", type=float, default=120.0)
    args = p.parse_args()
    clients = asyncio.run(run_clients(args.socket, args.n, args.timeout))
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump([asdict(c) for c in clients], f)


if __name__ == "__main__":
    main()
