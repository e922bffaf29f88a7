"""The loopback sshd servers and the relay of tests/sshd.py do what the SSH executor's tests
rely on: real logins by key and by alias, host keys checked, a dead link on demand."""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from conftest import wait_for
from sshd import Relay, Sshd, SshHosts, ssh_hosts

REACHED = 'echo "$SSH_CONNECTION" | cut -d" " -f3,4; id -un'


async def connect(hosts: SshHosts, server: Sshd | Relay, *, key: Path | None = None,
                  known_hosts: Path | None = None,
                  **options: Any) -> asyncssh.SSHClientConnection:
    """A connection to a server or relay by address and port, with the client key and
    known_hosts unless told otherwise."""
    return await asyncssh.connect(server.address, port=server.port, username=hosts.user,
                            client_keys=[str(key or hosts.key)],
                            known_hosts=str(known_hosts or hosts.known_hosts), **options)


async def run(conn: asyncssh.SSHClientConnection, command: str) -> str:
    return str((await conn.run(command, check=True)).stdout)


def test_a_command_runs_on_each_server_and_sees_the_address_it_was_reached_on(
        sshd_hosts: SshHosts) -> None:
    async def scenario() -> None:
        for server in sshd_hosts.servers:
            async with await connect(sshd_hosts, server) as conn:
                assert await run(conn, REACHED) == f"{server.address} {server.port}\nccd-ssh-test\n"
    asyncio.run(scenario())


def test_each_alias_of_the_ssh_config_reaches_its_server(sshd_hosts: SshHosts) -> None:
    async def scenario() -> None:
        for server in sshd_hosts.servers:
            async with asyncssh.connect(server.alias, config=[str(sshd_hosts.ssh_config)]) as conn:
                assert await run(conn, REACHED) == f"{server.address} {server.port}\nccd-ssh-test\n"
    asyncio.run(scenario())


def test_the_proxyjump_alias_reaches_the_third_server_through_the_first(
        sshd_hosts: SshHosts) -> None:
    a, b, c = sshd_hosts.servers

    async def scenario() -> None:
        async with asyncssh.connect(sshd_hosts.jump_alias,
                                    config=[str(sshd_hosts.ssh_config)]) as conn:
            assert await run(conn, REACHED) == f"{c.address} {c.port}\nccd-ssh-test\n"
    asyncio.run(scenario())
    wait_for(lambda: (a.accepted(), b.accepted(), c.accepted()) == (1, 0, 1),
             timeout=5, what="one login on ccd-a and one on ccd-c")


def test_openssh_reads_the_ssh_config_too(sshd_hosts: SshHosts) -> None:
    # The benchmark's "one ssh process per job" goes through the same aliases.
    *_, c = sshd_hosts.servers
    done = subprocess.run(["ssh", "-F", str(sshd_hosts.ssh_config), sshd_hosts.jump_alias,
                           REACHED], capture_output=True, text=True, timeout=30)
    assert done.stdout == f"{c.address} {c.port}\nccd-ssh-test\n", done.stderr


def test_a_command_on_an_open_connection_takes_milliseconds(sshd_hosts: SshHosts) -> None:
    async def scenario() -> list[float]:
        times = []
        async with await connect(sshd_hosts, sshd_hosts.servers[0]) as conn:
            await run(conn, "true")
            for _ in range(50):
                start = time.perf_counter()
                await run(conn, "true")
                times.append(time.perf_counter() - start)
        return times
    times = asyncio.run(scenario())
    print(f"command on an open connection: median {statistics.median(times) * 1000:.1f} ms, "
          f"max {max(times) * 1000:.1f} ms over {len(times)}")


def test_an_unknown_host_key_is_refused(sshd_hosts: SshHosts) -> None:
    b = sshd_hosts.servers[1]

    async def scenario() -> None:
        async with await connect(sshd_hosts, b, known_hosts=sshd_hosts.known_hosts_without(b)):
            pass
    with pytest.raises(asyncssh.HostKeyNotVerifiable):
        asyncio.run(scenario())


def test_a_changed_host_key_is_refused(sshd_hosts: SshHosts) -> None:
    b = sshd_hosts.servers[1]

    async def scenario() -> None:
        async with await connect(sshd_hosts, b, known_hosts=sshd_hosts.known_hosts_changed(b)):
            pass
    with pytest.raises(asyncssh.HostKeyNotVerifiable):
        asyncio.run(scenario())


def test_a_key_the_server_does_not_know_is_refused(sshd_hosts: SshHosts) -> None:
    async def scenario() -> None:
        async with await connect(sshd_hosts, sshd_hosts.servers[0], key=sshd_hosts.untrusted_key):
            pass
    with pytest.raises(asyncssh.PermissionDenied):
        asyncio.run(scenario())


def test_each_connection_is_one_accepted_login_whatever_its_commands(
        sshd_hosts: SshHosts) -> None:
    a = sshd_hosts.servers[0]

    async def scenario() -> None:
        assert a.accepted() == 0
        async with await connect(sshd_hosts, a) as conn:
            await asyncio.gather(*(run(conn, "true") for _ in range(10)))
            wait_for(lambda: a.accepted() == 1, timeout=5, what="one login")
        async with await connect(sshd_hosts, a) as conn:
            await run(conn, "true")
            wait_for(lambda: a.accepted() == 2, timeout=5, what="a second login")
    asyncio.run(scenario())


def test_the_relay_passes_traffic_and_counts_connections(
        sshd_hosts: SshHosts, relay: Relay) -> None:
    b = relay.server

    async def scenario() -> None:
        for expected in (1, 2):
            async with await connect(sshd_hosts, relay) as conn:
                assert await run(conn, REACHED) == f"{b.address} {b.port}\nccd-ssh-test\n"
            assert relay.connections == expected
        async with asyncssh.connect(relay.alias, config=[str(sshd_hosts.ssh_config)]) as conn:
            await run(conn, "true")
    asyncio.run(scenario())
    assert relay.connections == 3
    wait_for(lambda: b.accepted() == 3, timeout=5, what="three logins behind the relay")


def test_a_command_through_a_frozen_relay_waits_and_completes_after_thaw(
        sshd_hosts: SshHosts, relay: Relay) -> None:
    async def scenario() -> None:
        async with await connect(sshd_hosts, relay) as conn:
            await run(conn, "true")
            relay.freeze()
            command = asyncio.create_task(run(conn, "echo after"))
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(asyncio.shield(command), 0.5)
            relay.thaw()
            assert await asyncio.wait_for(command, 5) == "after\n"
    asyncio.run(scenario())


def test_a_connection_opened_through_a_frozen_relay_completes_after_thaw(
        sshd_hosts: SshHosts, relay: Relay) -> None:
    async def scenario() -> None:
        relay.freeze()
        opening = asyncio.create_task(connect(sshd_hosts, relay))
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.shield(opening), 0.5)
        relay.thaw()
        async with await asyncio.wait_for(opening, 5) as conn:
            await run(conn, "true")
    asyncio.run(scenario())


def test_keepalive_notices_a_frozen_relay(sshd_hosts: SshHosts, relay: Relay) -> None:
    async def scenario() -> float:
        async with await connect(sshd_hosts, relay, keepalive_interval=0.2,
                                 keepalive_count_max=2) as conn:
            await run(conn, "true")
            relay.freeze()
            start = time.perf_counter()
            await asyncio.wait_for(conn.wait_closed(), 5)
        return time.perf_counter() - start
    print(f"keepalive 0.2 s x 2: the frozen link noticed after {asyncio.run(scenario()):.2f} s")


def test_max_sessions_limits_the_channels_of_one_connection() -> None:
    async def scenario(hosts: SshHosts) -> None:
        async with await connect(hosts, hosts.servers[0]) as conn:
            sleeping = [await conn.create_process("sleep 30") for _ in range(2)]
            with pytest.raises(asyncssh.ChannelOpenError):
                await conn.create_process("true")
            for process in sleeping:
                process.terminate()  # asks sshd to signal it
    with ssh_hosts(max_sessions=2) as hosts:
        asyncio.run(scenario(hosts))


def test_stopping_ends_servers_connections_and_relays_and_removes_the_files() -> None:
    async def scenario() -> None:
        with ssh_hosts() as hosts:
            relay = hosts.relay(hosts.servers[1])
            async with await connect(hosts, relay) as through_relay, \
                    await connect(hosts, hosts.servers[0]) as direct:
                await run(through_relay, "true")
                await run(direct, "true")
                relay.freeze()
                hosts.stop()
                for server in hosts.servers:
                    assert "Received signal 15; terminating." in server.log_text()
                await asyncio.wait_for(direct.wait_closed(), 5)
                await asyncio.wait_for(through_relay.wait_closed(), 5)
        assert relay.alias not in {thread.name for thread in threading.enumerate()}
        assert not hosts.directory.exists()
    asyncio.run(scenario())
