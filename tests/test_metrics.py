"""`GET /metrics`: Prometheus's text format, read by prometheus_client's own parser, from a
real daemon; behind the API's auth; in the OpenAPI document."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from conftest import DEAD, Ccctl, Daemon, ssh_workflow, wait_for, write
from prometheus_client.parser import text_string_to_metric_families
from sshd import SshHosts, free_port

# The Slurm suite's fixtures (a daemon on the real cluster, a shim counting its commands).
from test_slurm import shim_of, slurm_daemon, slurm_env  # noqa: F401

from ccd import api
from ccd.openapi import document
from ccd.service import Service


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample by name and labels, as Prometheus's parser reads the text."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_show_a_finished_runs_jobs_by_state(tmp_path: Path, daemon: Daemon) -> None:
    wf = write(tmp_path / "mixed.yaml", """\
        workflow:
          nodes:
            ok: {exec: 'true'}
            ok2: {exec: 'true'}
            bad: {exec: 'exit 1'}
            below: {exec: 'true'}
          dependencies: ['bad,below']
        """)
    run_id = daemon.submit(wf)
    assert daemon.ended(run_id)[""]["state"] == "failed"
    with daemon.http() as http:
        response = http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    got = samples(response.text)
    jobs = {state: got["ccd_jobs", (("state", state),)] for state in
            ("ready", "queued", "running", "done", "failed", "skipped", "cancelled")}
    assert jobs == {"ready": 0, "queued": 0, "running": 0, "done": 2, "failed": 1,
                    "skipped": 1, "cancelled": 0}
    assert got["ccd_runs", (("state", "failed"),)] == 1
    assert got["ccd_runs", (("state", "running"),)] == 0
    assert got["ccd_runs_driven", ()] == 0
    assert got["ccd_events_total", ()] >= 9  # the run starts and ends, 3 jobs too, 1 skipped
    assert got["ccd_sse_clients", ()] == 0
    assert got["ccd_store_commit_seconds_count", ()] >= 1
    assert got["ccd_store_commit_seconds_bucket", (("le", "+Inf"),)] == \
        got["ccd_store_commit_seconds_count", ()]
    assert got["ccd_executor_polls_total", (("host", "localhost"), ("kind", "local"))] >= 0
    assert got["process_resident_memory_bytes", ()] > 0

    # A second run: the first one's jobs, remembered, and the new one's, counted.
    second = daemon.submit(wf)
    daemon.ended(second)
    with daemon.http() as http:
        again = samples(http.get("/metrics").text)
    assert again["ccd_jobs", (("state", "done"),)] == 4
    assert again["ccd_runs", (("state", "failed"),)] == 2


def test_metrics_show_each_remote_hosts_link(daemon: Daemon, sshd_hosts: SshHosts) -> None:
    b = sshd_hosts.servers[1]
    with daemon.http() as http:
        text = ssh_workflow(sshd_hosts, free_port(DEAD))
        assert http.post("/api/v1/workflows", content=text.encode(),
                         params={"name": "remote", "filename": "remote.yaml"}).status_code == 201
        run = http.post("/api/v1/runs", json={"workflow": "remote"}).json()["run"]
        up = ("ccd_host_up", (("address", f"{sshd_hosts.user}@{b.address}:{b.port}"),
                              ("host", "b"), ("kind", "ssh")))
        polls = ("ccd_executor_polls_total", (("host", "b"), ("kind", "ssh")))

        def watched() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
            got = samples(http.get("/metrics").text)
            return got if got.get(up) == 1 and got.get(("ccd_host_jobs", up[1])) == 1 \
                and got.get(polls, 0) >= 1 else {}

        wait_for(watched, what="the job on host b to be watched")
        got = watched()
        http.post(f"/api/v1/runs/{run}/cancel")
    assert got["ccd_host_commands_total", up[1]] >= 1
    assert got["ccd_host_connections_total", up[1]] == 1
    assert 0 < got["ccd_host_rtt_seconds", up[1]] < 30
    assert got["ccd_runs_driven", ()] == 1
    assert got["ccd_jobs", (("state", "running"),)] == 1


def test_metrics_count_a_clusters_queue_queries(
        tmp_path: Path, slurm_daemon: Daemon) -> None:  # noqa: F811 (the fixture, imported)
    wf = write(tmp_path / "held.yaml", """\
        workflow:
          nodes:
            held: {kind: slurm, exec: 'true', sbatch: [--hold]}
        """)
    run_id = slurm_daemon.submit(wf)
    wait_for(lambda: slurm_daemon.jobs(run_id)["held"]["message"] == "JobHeldUser",
             what="the job held in the queue")
    at = (("host", "localhost"), ("kind", "slurm"))
    shim = shim_of(slurm_daemon.env)

    def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        with slurm_daemon.http() as http:
            return samples(http.get("/metrics").text)

    first, squeues = scrape()["ccd_executor_polls_total", at], shim.counts()["squeue"]
    wait_for(lambda: scrape()["ccd_executor_polls_total", at] >= first + 3,
             what="three more queue queries")
    got = scrape()
    more_squeues = shim.counts()["squeue"] - squeues
    more_polls = got["ccd_executor_polls_total", at] - first
    assert more_squeues in (more_polls, more_polls + 1)  # one may be under way
    called = shim.counts()
    (calls,) = [v for (name, labels), v in scrape().items()
                if name == "ccd_host_batch_calls_total" and ("kind", "slurm") in labels]
    assert calls >= called["sbatch"] + called["squeue"] - 1 >= 4  # one may be under way
    assert got["ccd_jobs", (("state", "queued"),)] == 1
    assert Ccctl(slurm_daemon.env)("cancel", run_id).returncode == 0


def test_metrics_over_tcp_need_the_token(daemon: Daemon) -> None:
    assert httpx.get(f"{daemon.url}/metrics").status_code == 401
    response = httpx.get(f"{daemon.url}/metrics",
                         headers={"Authorization": f"Bearer {daemon.token}"})
    assert response.status_code == 200
    assert ("ccd_runs_driven", ()) in samples(response.text)


def test_metrics_are_in_the_openapi_document() -> None:
    operation = document()["paths"]["/metrics"]["get"]
    assert operation["operationId"] == "metrics"
    assert "text/plain" in operation["responses"]["200"]["content"]
    assert "401" in operation["responses"]


def test_two_apps_in_one_process_have_their_own_metrics(tmp_path: Path) -> None:
    async def scrape(state: Path) -> str:
        async with Service(state) as service:
            app, _ = api.build(service, "token")
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1",
                                         headers={"Authorization": "Bearer token"}) as client:
                return (await client.get("/metrics")).text

    async def both() -> list[str]:
        return list(await asyncio.gather(scrape(tmp_path / "a"), scrape(tmp_path / "b")))

    for text in asyncio.run(both()):
        assert samples(text)["ccd_runs", (("state", "done"),)] == 0
