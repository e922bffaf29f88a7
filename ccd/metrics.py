"""`GET /metrics`: the daemon's state in Prometheus's text format, for a scraper.

Everything is read when a scraper asks, from what the service keeps anyway, rather than
counted on the scheduler's path: runs and jobs by state (from the database, in a worker
thread), runs driven here and jobs running, events published (a counter: Prometheus's
`rate()` makes it events per second), clients of the event streams, how long the store's
commits take (the one figure measured for this: two numbers per commit on the writer
thread), each remote host's link (up, round trip, channels, commands, calls to a batch
system), each executor's polls (for a batch system, its queue queries), and notifications
by outcome. The process's own CPU, memory and file descriptors come from
prometheus_client's ProcessCollector.

Counting every job of every run at each scrape cost 0.7-1 s for a million jobs; the jobs
of a run that has ended never change, so they are counted once and remembered, and a
scrape counts only the unfinished runs' jobs (a query each, by the jobs' primary key).

Each app has its own registry: prometheus_client's global one would mix the apps that one
test process makes.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from ccd.model import JobState, RunState
from ccd.service import Service
from ccd.store import COMMIT_BUCKETS

# The classic text format: every Prometheus server reads it (ours has no UTF-8 names).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    """The metrics of one service, collected at scrape time."""

    def __init__(self, service: Service) -> None:
        self._service = service
        self.registry = CollectorRegistry()
        self.registry.register(self)
        ProcessCollector(registry=self.registry)
        self._ended: dict[str, dict[str, int]] = {}  # jobs by state of the runs that ended
        self._runs: Counter[str] = Counter()  # runs by state, as of the last scrape
        self._jobs: Counter[str] = Counter()
        self._refreshing = asyncio.Lock()

    async def scrape(self) -> bytes:
        """The text a scraper gets: fresh counts from the database, then everything."""
        async with self._refreshing:
            states, counted = await asyncio.to_thread(self._service.store.totals, self._ended)
            for run_id, jobs in counted.items():
                if RunState(states[run_id]).final:
                    self._ended[run_id] = jobs
            for gone in self._ended.keys() - states.keys():  # pruned
                del self._ended[gone]
            self._runs = Counter(states.values())
            self._jobs = Counter()
            for run_id in states:
                ended = self._ended.get(run_id)
                self._jobs.update(counted[run_id] if ended is None else ended)
            return generate_latest(self.registry)

    def collect(self) -> Iterator[Metric]:
        """Every family but the process's (prometheus_client's Collector protocol)."""
        s = self._service
        yield _by_state("ccd_runs", "Runs by state (all in the state directory)",
                        self._runs, [r.value for r in RunState])
        yield _by_state("ccd_jobs", "Jobs of all runs by state", self._jobs,
                        [j.value for j in JobState])
        yield GaugeMetricFamily("ccd_runs_driven", "Runs this daemon drives now",
                                value=s.active)
        yield GaugeMetricFamily("ccd_jobs_running", "Jobs running now, outside batch queues",
                                value=s.hosts.running)
        yield GaugeMetricFamily("ccd_max_jobs", "Jobs at once, across all runs",
                                value=s.hosts.max_jobs)
        yield GaugeMetricFamily("ccd_problems", "What keeps runs from going on now (a full "
                                "disk, a host with no room): how many", value=len(s.problems()))
        yield CounterMetricFamily("ccd_events", "Job and run events published to clients "
                                  "(this daemon's runs and those of ccctl run)",
                                  value=s.bus.published)
        yield GaugeMetricFamily("ccd_sse_clients", "Clients following an event stream",
                                value=s.bus.subscribers)
        times = s.store.commit_times
        cumulative, buckets = 0, []
        for bound, n in zip((*COMMIT_BUCKETS, float("inf")), times.buckets, strict=True):
            cumulative += n
            buckets.append(("+Inf" if bound == float("inf") else f"{bound:g}", cumulative))
        yield HistogramMetricFamily("ccd_store_commit_seconds", "How long a commit of the "
                                    "event journal takes, retries included",
                                    buckets=buckets, sum_value=times.seconds)
        yield from _hosts(s)
        notes = CounterMetricFamily("ccd_notifications", "Notifications of ended runs by "
                                    "notifier and outcome", labels=["kind", "outcome"])
        for (kind, outcome), n in sorted(s.notifier.outcomes.items()):
            notes.add_metric([kind, outcome], n)
        yield notes


def _by_state(name: str, text: str, counts: Counter[str], states: list[str]) -> Metric:
    family = GaugeMetricFamily(name, text, labels=["state"])
    for state in states:
        family.add_metric([state], counts.get(state, 0))
    return family


def _hosts(s: Service) -> Iterator[Metric]:
    """Each remote host's link, and each executor's polls."""
    labels = ["kind", "host", "address"]
    up = GaugeMetricFamily("ccd_host_up", "1 if the link to the host is up", labels=labels)
    rtt = GaugeMetricFamily("ccd_host_rtt_seconds", "How long a command on the host takes, "
                            "smoothed", labels=labels)
    channels = GaugeMetricFamily("ccd_host_channels", "SSH channels in use", labels=labels)
    jobs = GaugeMetricFamily("ccd_host_jobs", "Jobs watched on the host", labels=labels)
    connections = CounterMetricFamily("ccd_host_connections", "Connections opened",
                                      labels=labels)
    commands = CounterMetricFamily("ccd_host_commands", "Commands run", labels=labels)
    calls = CounterMetricFamily("ccd_host_batch_calls", "Calls to a batch system's "
                                "controller: queue queries, lookups, submissions, cancels",
                                labels=labels)
    for link in s.hosts.links():
        at = [link.kind, link.host, link.address]
        up.add_metric(at, 1 if link.connected else 0)
        if link.rtt is not None:
            rtt.add_metric(at, link.rtt)
        channels.add_metric(at, link.channels)
        jobs.add_metric(at, link.jobs)
        connections.add_metric(at, link.connections)
        commands.add_metric(at, link.commands)
        calls.add_metric(at, link.rpcs)
    polls = CounterMetricFamily("ccd_executor_polls", "Rounds of looking at the jobs of a "
                                "host (for a batch system: queue queries)",
                                labels=["kind", "host"])
    for (kind, host), counters in s.hosts.executor_counters().items():
        polls.add_metric([kind, host], counters.get("polls", 0))
    yield from (up, rtt, channels, jobs, connections, commands, calls, polls)
