"""Per-job trace: what a job used (CPU time, peak memory, bytes written) is recorded by the
job protocol and comes back with its end, close to what the job measured of itself, on
this machine, on an ssh host, on a Slurm node and after a daemon restart; `ccctl status`,
the page and the run's report show it and `ccctl trace` exports it as CSV and JSON, one row
per job."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import Ccctl, Daemon, jobs_of, log_of, running_daemon, wait_for, write
from sshd import SshHosts
from test_slurm import slurm_env  # noqa: F401 - a fixture
from test_ssh import inventory, ssh_env  # noqa: F401 - a fixture
from test_web import PUSH_MS, Web, browser, expect, start, upload, web  # noqa: F401 - fixtures

from ccd.executors import trace
from ccd.executors.protocol import parse_status

MB = 1_000_000
# Allocates and touches ~100 MB, burns ~1 s of CPU, writes 10 MB, optionally holds its memory
# until a file appears, then prints what it measured of itself: the truth to compare with.
BURN = """\
import json, os, resource, sys, time
held = bytearray(100 << 20)
t = time.process_time()
while time.process_time() - t < 1.0:
    pass
with open("out.bin", "wb") as f:
    f.write(b"x" * 10_000_000)
print("# progress=10", flush=True)
while len(sys.argv) > 1 and not os.path.exists(sys.argv[1]):
    time.sleep(0.02)
me = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"cpu": me.ru_utime + me.ru_stime, "rss": me.ru_maxrss * 1024}))
"""


def truth(log: str) -> dict[str, float]:
    """What the burn job measured of itself: the last line of its log."""
    found: dict[str, float] = json.loads(log.strip().splitlines()[-1])
    return found


def assert_close(job: dict[str, Any], told: dict[str, float], sampled: bool) -> None:
    """The trace is within 20% of what the job measured itself."""
    t = job["trace"]
    cpu = t["cpu_user"] + t["cpu_system"]
    assert cpu == pytest.approx(told["cpu"], rel=0.2), t
    assert t["peak_rss"] == pytest.approx(told["rss"], rel=0.2), t
    assert t["peak_rss"] > 100 * MB
    assert t["rss_sampled"] is sampled
    assert t["bytes_written"] == pytest.approx(10 * MB, rel=0.2), t


def burn_workflow(tmp_path: Path, head: str = "", where: str = "", hold: Path | None = None,
                  at: Path | None = None) -> Path:
    """A workflow whose job `burn` runs BURN (written in `at`, default tmp_path: named by
    its path, as `ccctl submit` sends the YAML alone), with three quick local jobs."""
    script = write((at or tmp_path) / "burn.py", BURN, 0o644)
    arg = f" {hold}" if hold else ""
    return write(tmp_path / "wf.yaml", head + f"""\
workflow:
  nodes:
    burn: {{{where}exec: 'python3 {script}{arg}'}}
    quick: {{exec: 'echo quick'}}
    fails: {{exec: 'exit 3'}}
    after: {{exec: 'true'}}
  dependencies: ['fails,after']
""")


def burnt(d: Daemon, run_id: str) -> bool:
    """Has the burn job burnt (or ended)?"""
    job = d.jobs(run_id)["burn"]
    return job["progress"] == 10 or job["state"] != "running"


def polls(d: Daemon, executor: str) -> int:
    """How many polls an executor of the daemon has made."""
    with d.http() as http:
        found = http.get("/api/v1/health").json()["hosts"]["executors"].get(executor, {})
    return int(found.get("polls", 0))


def sampled_while_running(d: Daemon, executor: str) -> None:
    """Wait until the executor has polled for more than a sample interval (it polls at most
    every 0.1 s, so 12 polls span more than SAMPLE_EVERY): a sample was taken."""
    since = polls(d, executor)
    wait_for(lambda: polls(d, executor) >= since + 12, what="a memory sample")


# -- the wrapper's record -------------------------------------------------------------------


@pytest.mark.parametrize(("times", "user", "system"), [
    ("0m0.001000s 0m0.002000s\n0m1.250000s 0m0.500000s", 1.251, 0.502),  # dash
    ("0m0.001s 0m0.002s\n0m1.250s 0m0.500s", 1.251, 0.502),  # bash
    ("0m 0.00s 0m 0.00s\n0m 1.25s 0m 0.50s", 1.25, 0.5),  # busybox ash
    ("0m0.000s 0m0.000s\n2m1.250s 0m0.500s", 121.25, 0.5),  # past a minute
])
def test_the_wrappers_record_is_read_as_every_shell_writes_times(
        times: str, user: float, system: float) -> None:
    status = parse_status(f"pid=7\ntrace=1234 5678 {times}\nexit=0\n")
    assert status.trace is not None
    assert status.trace.cpu_user == pytest.approx(user)
    assert status.trace.cpu_system == pytest.approx(system)
    assert (status.trace.bytes_read, status.trace.bytes_written) == (1234, 5678)


def test_a_trace_is_taken_only_with_the_exit_line_after_it() -> None:
    assert parse_status("pid=7\ntrace=1 2 0m0.00s 0m0.00s\n").trace is None
    assert parse_status("pid=7\ntrace=1 2 0m0.00s 0m0.00s\n0m1.00s 0m0.").trace is None
    no_proc = parse_status("pid=7\ntrace=- - 0m0.00s 0m0.00s\n0m1.00s 0m0.00s\nexit=0\n")
    assert no_proc.trace is not None and no_proc.trace.bytes_read is None
    assert no_proc.trace.cpu_user == 1.0


def test_the_wrapper_records_cpu_and_bytes_of_what_it_ran(tmp_path: Path) -> None:
    job = tmp_path / "job"
    job.mkdir()
    script = ("i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; "
              "head -c 3000000 /dev/zero > out")
    done = subprocess.run(["sh", str(Path(trace.__file__).parent / "job.sh"), str(job),
                           str(tmp_path), "", script], timeout=60)
    assert done.returncode == 0
    lines = (job / "status").read_text().splitlines()
    assert lines[1].startswith("trace=") and lines[-1] == "exit=0"  # exit= stays last
    status = parse_status((job / "status").read_text())
    assert status.trace is not None and status.trace.cpu_user is not None
    assert status.trace.cpu_user + (status.trace.cpu_system or 0) > 0.05
    assert status.trace.bytes_written is not None and status.trace.bytes_written >= 3_000_000


# -- this machine -----------------------------------------------------------------------------


def test_a_local_jobs_cpu_memory_and_bytes_are_close_to_what_it_measured_itself(
        tmp_path: Path, daemon: Daemon, ccctl: Ccctl) -> None:
    run_id = daemon.submit(burn_workflow(tmp_path))
    jobs = daemon.ended(run_id)
    assert jobs["burn"]["state"] == "done"
    assert_close(jobs["burn"], truth(log_of(jobs, "burn")), sampled=False)  # wait4: exact
    assert jobs["quick"]["trace"]["cpu_user"] < 0.5
    assert jobs["after"]["trace"] is None  # never ran

    status = ccctl("status", run_id)
    assert "cpu" in status.stdout and "memory" in status.stdout
    burn_line = next(line for line in status.stdout.splitlines() if line.startswith("burn"))
    assert " MB" in burn_line and " s" in burn_line

    exported = ccctl("trace", run_id, "--format", "csv")
    assert exported.returncode == 0, exported.stderr
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert [r["name"] for r in rows] == ["burn", "quick", "fails", "after"]  # one per job
    burn = rows[0]
    assert (burn["task_id"], burn["status"], burn["exit"], burn["attempt"]) == (
        "1", "done", "0", "1")
    assert float(burn["cpu_user_s"]) + float(burn["cpu_system_s"]) == pytest.approx(
        truth(log_of(jobs, "burn"))["cpu"], rel=0.2)
    assert int(burn["peak_rss_bytes"]) > 100 * MB and burn["peak_rss_sampled"] == "false"
    assert burn["start"].endswith("Z") and float(burn["realtime_s"]) > 0
    assert rows[2]["status"] == "failed" and rows[2]["exit"] == "3"
    assert rows[3]["status"] == "skipped" and rows[3]["cpu_user_s"] == ""

    as_json = json.loads(ccctl("trace", run_id, "--format", "json").stdout)
    assert [r["name"] for r in as_json] == ["burn", "quick", "fails", "after"]
    assert as_json[0]["peak_rss_bytes"] == jobs["burn"]["trace"]["peak_rss"]
    assert as_json[3]["cpu_user_s"] is None

    report = tmp_path / "report.html"
    assert ccctl("report", run_id, "-o", report).returncode == 0
    burn_row = next(r for r in report.read_text().split("<tr>") if "<th>burn</th>" in r)
    assert re.search(r"<td class=n>\d+\.\d\d s</td><td class=n>1\d\d\.\d MB</td>", burn_row)

    wrong = ccctl("trace", run_id, "--format", "xml")
    assert wrong.returncode == 2 and "csv or json" in wrong.stderr


def test_ccctl_run_reports_the_trace_and_ccctl_trace_reads_it_without_a_daemon(
        tmp_path: Path, ccctl: Ccctl) -> None:
    proc = ccctl("run", burn_workflow(tmp_path), "--json", timeout=120)
    jobs = jobs_of(proc)
    assert_close(jobs["burn"], truth(log_of(jobs, "burn")), sampled=False)
    exported = ccctl("trace", "@last")  # no daemon: from the state directory
    assert exported.returncode == 0, exported.stderr
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert [r["name"] for r in rows] == ["burn", "quick", "fails", "after"]
    assert int(rows[0]["peak_rss_bytes"]) == jobs["burn"]["trace"]["peak_rss"]


def test_a_local_jobs_peak_is_exact_when_ccd_was_started_by_a_bigger_process(
        tmp_path: Path, env: dict[str, str]) -> None:
    # The kernel carries a process's memory mark across exec: a ccctl started by a 300 MB
    # process (a test runner, a notebook) has that mark in its own ru_maxrss, which once
    # made every smaller job's peak count as ccd's and fall back to sampling.
    big = ("import os, sys\nb = bytearray(300 << 20)\nfor i in range(0, len(b), 4096):"
           " b[i] = 1\nos.execv(sys.executable, [sys.executable, '-m', 'ccctl', *sys.argv[1:]])")
    proc = subprocess.run([sys.executable, "-c", big, "run", str(burn_workflow(tmp_path)),
                           "--json"], env=env, capture_output=True, text=True, timeout=120)
    jobs = jobs_of(proc)
    assert_close(jobs["burn"], truth(log_of(jobs, "burn")), sampled=False)


def test_after_a_daemon_restart_the_trace_comes_from_the_wrapper_and_samples(
        tmp_path: Path, env: dict[str, str], state_dir: Path) -> None:
    release = tmp_path / "release"
    with running_daemon(env, state_dir) as d:
        run_id = d.submit(burn_workflow(tmp_path, hold=release))
        wait_for(lambda: burnt(d, run_id), timeout=120,
                 what="burn to have burnt")
        d.kill()  # the job is no longer our child: no wait4 for it
        d.start()
        wait_for(lambda: polls(d, "local:localhost") > 0, what="the job re-attached")
        sampled_while_running(d, "local:localhost")
        release.touch()
        jobs = d.ended(run_id)
    assert jobs["burn"]["state"] == "done"
    assert_close(jobs["burn"], truth(log_of(jobs, "burn")), sampled=True)


def test_a_trace_survives_a_daemon_restart(tmp_path: Path, env: dict[str, str],
                                           state_dir: Path) -> None:
    wf = write(tmp_path / "wf.yaml", """\
        workflow:
          nodes: {a: {exec: 'head -c 2000000 /dev/zero > out'}}
        """)
    with running_daemon(env, state_dir) as d:
        run_id = d.submit(wf)
        before = d.ended(run_id)["a"]["trace"]
        d.stop()
        d.start()
        assert d.jobs(run_id)["a"]["trace"] == before
    assert before["bytes_written"] >= 2_000_000


def test_the_pages_table_shows_cpu_and_peak_memory_when_a_job_ends_by_push(
        web: Web, tmp_path: Path) -> None:  # noqa: F811
    script = write(tmp_path / "burn.py", BURN, 0o644)
    upload(web.daemon, f"workflow:\n  nodes:\n    burn: {{exec: 'python3 {script}'}}\n", "burn")
    web.login()
    web.open(f"#/runs/{start(web.daemon, 'burn')}")
    row = web.job_row("burn")
    expect(row).to_have_attribute("data-state", "done", timeout=PUSH_MS)
    expect(row.locator("td.cpu")).to_have_text(re.compile(r"^\d+\.\d\d s$"))
    expect(row.locator("td.memory")).to_have_text(re.compile(r"^1\d\d(\.\d)? MB$"))
    row.get_by_role("link", name="burn").click()
    detail = web.page.locator(".job-detail")
    expect(detail.locator(".fact-written")).to_have_text(re.compile(r"^10\.\d MB$"))
    expect(detail.locator(".fact-cpu")).to_contain_text("user ")
    web.assert_not_reloaded_and_clean()


# -- an ssh host ------------------------------------------------------------------------------


def test_an_ssh_jobs_cpu_memory_and_bytes_are_close_to_what_it_measured_itself(
        tmp_path: Path, sshd_hosts: SshHosts, ssh_env: dict[str, str],  # noqa: F811
        state_dir: Path) -> None:
    release = sshd_hosts.directory / "release-trace"
    wf = burn_workflow(tmp_path, inventory(sshd_hosts), "kind: ssh, host: ccd-a, ",
                       hold=release, at=sshd_hosts.directory)  # where its user can read it
    with running_daemon(ssh_env, state_dir) as d:
        run_id = d.submit(wf)
        wait_for(lambda: burnt(d, run_id), timeout=120,
                 what="burn to have burnt there")
        sampled_while_running(d, "ssh:ccd-a")
        release.touch()
        jobs = d.ended(run_id, timeout=120)
    assert jobs["burn"]["state"] == "done", jobs["burn"]["message"]
    assert_close(jobs["burn"], truth(log_of(jobs, "burn")), sampled=True)


# -- a batch system ---------------------------------------------------------------------------


def test_a_slurm_jobs_cpu_and_bytes_come_from_its_wrapper_and_no_memory_without_accounting(
        tmp_path: Path, slurm_env: dict[str, str]) -> None:  # noqa: F811
    proc = Ccctl(slurm_env)("run", burn_workflow(tmp_path, where="kind: slurm, "), "--json",
                            timeout=180)
    jobs = jobs_of(proc)
    assert jobs["burn"]["state"] == "done", jobs["burn"]["message"]
    told, t = truth(log_of(jobs, "burn")), jobs["burn"]["trace"]
    assert t["cpu_user"] + t["cpu_system"] == pytest.approx(told["cpu"], rel=0.2)
    assert t["bytes_written"] == pytest.approx(10 * MB, rel=0.2)
    # The job ran on a node: the login node cannot sample it, and the test cluster keeps no
    # accounting (AccountingStorageType=accounting_storage/none) for sacct to read.
    assert t["peak_rss"] is None
