"""How ccd reaches its remote hosts, as users see it: `GET /api/v1/hosts`, the `hosts`
notice on the global event stream, and `ccctl hosts`; against real sshd servers (a host
that answers, and one where nothing listens) and, for the notices' pace, the in-memory
executor with the feed's timers in the test's hand."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import DEAD, Ccctl, Daemon, running_daemon, ssh_workflow, wait_for
from sshd import SshHosts, free_port

from ccd import api
from ccd.bus import Bus
from ccd.executors import LinkState
from ccd.executors.memory import MemoryExecutor
from ccd.hosts import Hosts
from ccd.hostsfeed import HostsFeed
from ccd.service import Service


def by_host(found: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {h["host"]: h for h in found}


@pytest.fixture
def two_hosts(env: dict[str, str], state_dir: Path, sshd_hosts: SshHosts
              ) -> Iterator[Daemon]:
    """A daemon running a workflow whose job runs on ccd-b and whose other job's host
    refuses connections, once both links have been tried."""
    with running_daemon(env, state_dir) as daemon, daemon.http() as http:
        text = ssh_workflow(sshd_hosts, free_port(DEAD))
        r = http.post("/api/v1/workflows", content=text.encode(),
                      params={"name": "remote", "filename": "remote.yaml"})
        assert r.status_code == 201, r.text
        run = http.post("/api/v1/runs", json={"workflow": "remote"}).json()["run"]

        def both_tried() -> bool:
            hosts = by_host(http.get("/api/v1/hosts").json())
            return (hosts.get("b", {}).get("state") == "connected"
                    and hosts.get("gone", {}).get("state") == "unreachable")

        wait_for(both_tried, what="one host connected and one unreachable")
        yield daemon
        http.post(f"/api/v1/runs/{run}/cancel")


# -- the API --------------------------------------------------------------------------------


def test_hosts_need_the_token_over_tcp_and_are_empty_while_jobs_run_here(
        tmp_path: Path) -> None:
    async def scenario() -> tuple[httpx.Response, httpx.Response]:
        async with Service(tmp_path / "state") as service:
            app, _ = api.build(service, "token")
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport,
                                         base_url="http://127.0.0.1:8000") as client:
                refused = await client.get("/api/v1/hosts")
                listed = await client.get("/api/v1/hosts",
                                          headers={"Authorization": "Bearer token"})
                return refused, listed

    refused, listed = asyncio.run(scenario())
    assert refused.status_code == 401
    assert listed.status_code == 200 and listed.json() == []


def test_the_api_lists_a_connected_host_and_an_unreachable_one_with_why(
        two_hosts: Daemon, sshd_hosts: SshHosts) -> None:
    b = sshd_hosts.servers[1]
    with two_hosts.http() as http:
        wait_for(lambda: by_host(http.get("/api/v1/hosts").json())["b"]["jobs"] == 1,
                 what="job j watched on b")
        hosts = by_host(http.get("/api/v1/hosts").json())
    assert set(hosts) == {"b", "gone"}
    up, down = hosts["b"], hosts["gone"]
    assert (up["kind"], up["address"], up["state"], up["connected"], up["error"]) == (
        "ssh", f"{sshd_hosts.user}@{b.address}:{b.port}", "connected", True, "")
    assert up["connections"] == 1 and up["commands"] >= 1 and up["rtt"] > 0
    assert 0 <= up["channels"] <= up["channel_limit"]
    assert (down["state"], down["connected"], down["jobs"]) == ("unreachable", False, 0)
    assert "Connection refused" in down["error"] and DEAD in down["error"]
    assert down["connections"] == 0 and down["rtt"] is None
    over_tcp = httpx.get(f"{two_hosts.url}/api/v1/hosts",
                         headers={"Authorization": f"Bearer {two_hosts.token}"})
    assert {h["host"]: (h["address"], h["state"]) for h in over_tcp.json()} == {
        name: (h["address"], h["state"]) for name, h in hosts.items()}
    assert httpx.get(f"{two_hosts.url}/api/v1/hosts").status_code == 401


def test_the_openapi_document_declares_the_host_shape_and_its_three_states() -> None:
    from ccd.openapi import document

    doc = document()
    host = doc["components"]["schemas"]["Host"]
    assert sorted(host["properties"]["state"]["enum"]) == [
        "connected", "connecting", "unreachable"]
    listed = doc["paths"]["/api/v1/hosts"]["get"]["responses"]
    assert listed["200"]["content"]["application/json"]["schema"]["items"] == {
        "$ref": "#/components/schemas/Host"}
    assert "401" in listed


# -- the notice -----------------------------------------------------------------------------


def test_the_global_stream_says_when_a_host_connects_and_when_it_cannot(
        daemon: Daemon, sshd_hosts: SshHosts) -> None:
    notices: list[dict[str, Any]] = []
    stop = threading.Event()

    def listen() -> None:
        with daemon.http() as h, h.stream("GET", "/api/v1/events") as response:
            kind = ""
            for line in response.iter_lines():
                if line.startswith("event:"):
                    kind = line[6:].strip()
                elif line.startswith("data:") and kind == "hosts":
                    notices.append(json.loads(line[5:]))
                    states = {x["host"]: x["state"] for x in notices[-1]["hosts"]}
                    if states == {"b": "connected", "gone": "unreachable"}:
                        stop.set()
                        return

    listener = threading.Thread(target=listen)
    listener.start()
    with daemon.http() as http:
        wait_for(lambda: http.get("/api/v1/health").json()["event_subscribers"] == 1,
                 what="the listener")
        text = ssh_workflow(sshd_hosts, free_port(DEAD))
        assert http.post("/api/v1/workflows", content=text.encode(),
                         params={"name": "remote", "filename": "remote.yaml"}
                         ).status_code == 201
        run = http.post("/api/v1/runs", json={"workflow": "remote"}).json()["run"]
        listener.join(timeout=60)
        http.post(f"/api/v1/runs/{run}/cancel")
    assert stop.is_set(), notices
    last = by_host(notices[-1]["hosts"])
    assert last["b"]["address"].endswith(f":{sshd_hosts.servers[1].port}")
    assert "Connection refused" in last["gone"]["error"]
    assert set(last["b"]) == {"kind", "host", "address", "state", "connected", "since",
                              "error", "rtt", "channels", "channel_limit", "jobs",
                              "connections", "commands", "rpcs"}


class Timers:
    """The feed's clock and timers, moved by the test: nothing waits for real time."""

    def __init__(self) -> None:
        self.now = 0.0
        self.pending: list[tuple[asyncio.TimerHandle, Callable[[], None]]] = []

    def call_later(self, delay: float, fn: Callable[[], None]) -> asyncio.TimerHandle:
        handle = asyncio.TimerHandle(self.now + delay, fn, (), asyncio.get_running_loop())
        self.pending.append((handle, fn))
        return handle

    def advance(self, seconds: float) -> None:
        """Let `seconds` pass: the timers due meanwhile fire, unless cancelled."""
        self.now += seconds
        due = [p for p in self.pending if p[0].when() <= self.now]
        self.pending = [p for p in self.pending if p[0].when() > self.now]
        for handle, fn in due:
            if not handle.cancelled():
                fn()


def link(host: str, connected: bool, error: str = "") -> LinkState:
    return LinkState("ssh", host, f"me@{host}:22", connected, 1.0, error, None, 0, 8, 0, 0, 0)


def test_a_burst_of_link_changes_is_one_notice_and_the_next_waits_a_fifth_of_a_second(
        ) -> None:
    async def scenario() -> list[list[dict[str, Any]]]:
        made, make = MemoryExecutor.factory()
        hosts, bus, timers = Hosts(4, make), Bus(), Timers()
        feed = HostsFeed(hosts, bus, clock=lambda: timers.now, call_later=timers.call_later)
        hosts.on_change = feed.changed
        sub = bus.subscribe()
        hosts.executor("ssh", "x")
        memory = made[0]
        for i in range(50):  # a flapping host, and a second one
            memory.link(link("x", connected=i % 2 == 1, error="" if i % 2 else "lost"))
        memory.link(link("y", connected=False))
        timers.advance(0)
        memory.link(link("y", connected=False, error="cannot connect: Connection refused"))
        timers.advance(0.1)
        first = sub.queue.qsize()
        timers.advance(0.1)
        got = []
        while not sub.queue.empty():
            _, _, frame = sub.queue.get_nowait()
            kind, data = frame.decode().split("\n")[:2]
            assert kind == "event: hosts"
            got.append(json.loads(data[len("data: "):])["hosts"])
        assert first == 1
        feed.close()
        return got

    notices = asyncio.run(scenario())
    assert [{h["host"]: h["state"] for h in n} for n in notices] == [
        {"x": "connected", "y": "connecting"}, {"x": "connected", "y": "unreachable"}]


def test_no_notice_goes_out_to_nobody() -> None:
    async def scenario() -> int:
        made, make = MemoryExecutor.factory()
        hosts, bus, timers = Hosts(4, make), Bus(), Timers()
        feed = HostsFeed(hosts, bus, clock=lambda: timers.now, call_later=timers.call_later)
        hosts.on_change = feed.changed
        hosts.executor("ssh", "x")
        made[0].link(link("x", connected=True))
        timers.advance(1)
        run_only = bus.subscribe("some-run")  # a run's stream gets no notices
        made[0].link(link("x", connected=False, error="lost"))
        timers.advance(1)
        assert run_only.queue.empty()
        return feed.sent

    assert asyncio.run(scenario()) == 0


def test_while_a_link_exists_followers_get_its_counters_fresh_without_a_change() -> None:
    async def scenario() -> list[int]:
        made, make = MemoryExecutor.factory()
        hosts, bus = Hosts(4, make), Bus()
        feed = HostsFeed(hosts, bus, gap=0, every=0.01)
        sub = bus.subscribe()
        hosts.executor("ssh", "x")
        seen: list[int] = []
        async with asyncio.TaskGroup() as group:
            refresh = group.create_task(feed.refresh_forever())
            for commands in range(1, 4):  # the link runs commands; nothing calls `changed`
                made[0].link_states["ssh", "x"] = dataclasses.replace(
                    link("x", connected=True), commands=commands)
                while not seen or seen[-1] != commands:
                    _, _, frame = await asyncio.wait_for(sub.queue.get(), 30)
                    seen.append(json.loads(frame.decode().split("\n")[1][6:])
                                ["hosts"][0]["commands"])
            refresh.cancel()
        feed.close()
        return seen

    assert set(asyncio.run(scenario())) == {1, 2, 3}


# -- ccctl ----------------------------------------------------------------------------------


def test_ccctl_hosts_says_when_no_remote_host_is_in_use(daemon: Daemon, ccctl: Ccctl) -> None:
    proc = ccctl("hosts")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "no remote hosts in use: every job so far ran on this machine"
    assert json.loads(ccctl("hosts", "--json").stdout) == []


def test_ccctl_hosts_shows_each_host_its_state_and_why_not(two_hosts: Daemon, ccctl: Ccctl,
                                                           sshd_hosts: SshHosts) -> None:
    b = sshd_hosts.servers[1]
    proc = ccctl("hosts")
    assert proc.returncode == 0, proc.stderr
    header, *rows = proc.stdout.splitlines()
    assert header.split() == ["host", "kind", "address", "state", "since", "rtt", "ms",
                              "channels", "jobs", "connections", "commands", "rpcs", "error"]
    up = next(r for r in rows if r.startswith("b "))
    down = next(r for r in rows if r.startswith("gone "))
    assert f"{sshd_hosts.user}@{b.address}:{b.port}" in up and " connected " in up
    assert " s ago" in up and "/" in up
    assert " unreachable " in down and "Connection refused" in proc.stdout
    listed = by_host(json.loads(ccctl("hosts", "--json").stdout))
    assert listed["gone"]["state"] == "unreachable"


def test_ccctl_hosts_without_a_daemon_says_how_to_start_it(ccctl: Ccctl) -> None:
    proc = ccctl("hosts")
    assert proc.returncode == 3 and proc.stderr.startswith("ccctl: ccd is not running")
