"""`kind: ssh` against real OpenSSH servers on 127.0.0.1-3 (tests/sshd.py): a workflow across
three hosts and this machine, files there and results back, the errors a user meets first,
a network cut, kill -9 of the daemon, cancel, one connection for every run, a server with
fewer sessions than assumed, and hostile strings that must reach the job as written."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT, Ccctl, Daemon, jobs_of, log_of, running_daemon, wait_for, write
from sshd import USER, Relay, Sshd, SshHosts, free_port, ssh_hosts

WRAPPER = (ROOT / "ccd" / "executors" / "job.sh").read_bytes()


@pytest.fixture
def ssh_env(env: dict[str, str], sshd_hosts: SshHosts, tmp_path: Path) -> dict[str, str]:
    """ccd's environment with a home whose ~/.ssh/config includes the servers' aliases, and
    keepalive that notices a dead link in ~3 s (as a user would set ServerAliveInterval)."""
    ssh = tmp_path / "home" / ".ssh"
    ssh.mkdir(parents=True)
    (ssh / "config").write_text(f"Include {sshd_hosts.ssh_config}\n"
                                "Host *\n  ServerAliveInterval 1\n  ServerAliveCountMax 2\n")
    env["HOME"] = str(ssh.parent)
    return env


@pytest.fixture
def ssh_ccctl(ssh_env: dict[str, str]) -> Ccctl:
    return Ccctl(ssh_env)


def inventory(hosts: SshHosts, **entries: str) -> str:
    """A `hosts:` inventory giving each server's alias its own work directory (the servers
    share one user and home), plus `entries` (name -> flow mapping text)."""
    lines = ["hosts:"]
    lines += [f"  {s.alias}: {{workdir: {s.workdir}}}" for s in hosts.servers]
    lines += [f"  {hosts.jump_alias}: {{workdir: {hosts.servers[2].workdir}}}"]
    lines += [f"  {name}: {{{entry}}}" for name, entry in entries.items()]
    return "\n".join(lines) + "\n"


def explicit(hosts: SshHosts, server: Sshd, **override: object) -> str:
    """An inventory entry reaching `server` without ~/.ssh/config."""
    fields: dict[str, object] = {"hostname": server.address, "port": server.port, "user": USER,
                                 "identity": str(hosts.key),
                                 "known_hosts": str(hosts.known_hosts),
                                 "workdir": str(server.workdir)} | override
    return ", ".join(f"{k}: {json.dumps(v)}" for k, v in fields.items())




def reached(server: Sshd) -> str:
    """What a job prints as `$SSH_CONNECTION`'s server part on `server`."""
    return f"{server.address} {server.port}"


# -- a workflow across hosts ----------------------------------------------------------------


def test_a_workflow_spans_three_hosts_and_this_machine_with_files_there_and_results_back(
        tmp_path: Path, sshd_hosts: SshHosts, ssh_ccctl: Ccctl) -> None:
    a, b, c = sshd_hosts.servers
    write(tmp_path / "data" / "in.txt", "input\n")
    write(tmp_path / "steps" / "on-a.sh", """\
        echo "# progress=50"
        echo "a at ${SSH_CONNECTION#* * }"
        mkdir -p out && cat out/prep.txt data/in.txt > out/a.txt
        echo "# progress=100"
        """)
    where = "${SSH_CONNECTION#* * }"  # the server's address and port
    wf = write(tmp_path / "wf.yaml", inventory(sshd_hosts, bee=explicit(sshd_hosts, b)) + f"""\
files: [data/*.txt]
workflow:
  nodes:
    prep: {{exec: 'mkdir -p out && echo prep here > out/prep.txt', outputs: [out/prep.txt]}}
    a: {{kind: ssh, host: ccd-a, script: steps/on-a.sh, outputs: [out/a.txt]}}
    b: {{kind: ssh, host: bee, outputs: [out/b.txt],
        exec: 'echo "b at {where}"; (cat out/a.txt; echo b) > out/b.txt'}}
    c: {{kind: ssh, host: {sshd_hosts.jump_alias}, outputs: [out/c.txt],
        exec: 'echo "c at {where}"; (cat out/a.txt; echo c) > out/c.txt'}}
    report: {{exec: 'cat out/b.txt out/c.txt'}}
  dependencies: ['prep,a,b,report', 'a,c,report']
""")
    proc = ssh_ccctl("run", wf, "--json", timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    jobs = jobs_of(proc)
    assert {n: j["state"] for n, j in jobs.items() if n} == dict.fromkeys(
        ["prep", "a", "b", "c", "report"], "done")
    # Each ran on its own server, c through a (ProxyJump), and each got what it read.
    assert f"a at {reached(a)}" in log_of(jobs, "a")
    assert f"b at {reached(b)}" in log_of(jobs, "b")
    assert f"c at {reached(c)}" in log_of(jobs, "c")
    assert log_of(jobs, "report") == "prep here\ninput\nb\nprep here\ninput\nc\n"
    assert jobs["a"]["progress"] == 100
    # Its results are in the run's working copy here, listed like a local job's.
    work = Path(str(jobs[""]["run_dir"])) / "work"
    assert (work / "out" / "c.txt").read_text() == "prep here\ninput\nc\n"
    # One login per host (a twice: its own jobs, and the jump to c), and the wrapper once
    # in each work directory, named by its hash.
    wait_for(lambda: (a.accepted(), b.accepted(), c.accepted()) == (2, 1, 1),
             what="one login per host")
    name = f"job-{hashlib.sha256(WRAPPER).hexdigest()[:16]}.sh"
    for server in sshd_hosts.servers:
        assert [p.name for p in server.workdir.glob("job-*.sh")] == [name]
        assert (server.workdir / name).read_bytes() == WRAPPER


def test_a_second_run_reuses_the_wrapper_and_gets_the_files_as_they_are_now(
        tmp_path: Path, sshd_hosts: SshHosts, ssh_ccctl: Ccctl) -> None:
    a = sshd_hosts.servers[0]
    data = write(tmp_path / "data.txt", "one\n")
    wf = write(tmp_path / "wf.yaml", inventory(sshd_hosts) + """\
files: [data.txt]
workflow:
  nodes:
    show: {kind: ssh, host: ccd-a, exec: 'cat data.txt'}
""")
    first = jobs_of(ssh_ccctl("run", wf, "--json", timeout=60))
    assert log_of(first, "show") == "one\n"
    wrapper = next(a.workdir.glob("job-*.sh"))
    uploaded = wrapper.stat().st_mtime_ns
    data.write_text("two\n")
    second = jobs_of(ssh_ccctl("run", wf, "--new", "--json", timeout=60))
    assert log_of(second, "show") == "two\n"
    assert wrapper.stat().st_mtime_ns == uploaded


# -- what goes wrong first ------------------------------------------------------------------


@pytest.fixture
def no_shell(sshd_hosts: SshHosts) -> Iterator[Sshd]:
    """A server on 127.0.0.4 where the account has no shell: every command runs nologin,
    as for an account whose login shell is /usr/sbin/nologin."""
    directory = sshd_hosts.directory / "noshell"
    server = Sshd(directory, "ccd-noshell", "127.0.0.4", sshd_hosts.directory / "authorized_keys")
    server.config.write_text(server.config.read_text() + "ForceCommand /usr/sbin/nologin\n")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_errors_a_user_meets_first_fail_the_job_at_once_and_say_what_to_fix(
        tmp_path: Path, sshd_hosts: SshHosts, no_shell: Sshd, ssh_ccctl: Ccctl) -> None:
    _, b, _ = sshd_hosts.servers
    known = tmp_path / "known_hosts"
    known.write_text(f"[{no_shell.address}]:{no_shell.port} {no_shell.public_key}\n")
    cases = {
        "badkey": (explicit(sshd_hosts, b, identity=str(sshd_hosts.untrusted_key)),
                   "authentication failed"),
        "unknownkey": (explicit(sshd_hosts, b,
                                known_hosts=str(sshd_hosts.known_hosts_without(b))),
                       "host key not verifiable"),
        "changedkey": (explicit(sshd_hosts, b,
                                known_hosts=str(sshd_hosts.known_hosts_changed(b))),
                       "host key not verifiable"),
        "gone": (explicit(sshd_hosts, b, hostname="127.0.0.9", port=free_port("127.0.0.9")),
                 "cannot connect: Connection refused"),
        "noshell": (explicit(sshd_hosts, no_shell, known_hosts=str(known)),
                    "cannot run a POSIX shell there (`sh -s`): This account is currently "
                    "not available"),
    }
    nodes = "\n".join(f"    {n}: {{kind: ssh, host: {n}, exec: 'echo never'}}" for n in cases)
    wf = write(tmp_path / "wf.yaml", inventory(sshd_hosts, **{
        n: entry for n, (entry, _) in cases.items()}) + f"""\
workflow:
  nodes:
{nodes}
    here: {{exec: 'echo here'}}
""")
    proc = ssh_ccctl("run", wf, "--json", timeout=60)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    jobs = jobs_of(proc)
    assert jobs["here"]["state"] == "done"
    for name, (_, said) in cases.items():
        assert jobs[name]["state"] == "failed", name
        assert said in str(jobs[name]["message"]), (name, jobs[name]["message"])
        assert f"host {name!r}" in str(jobs[name]["message"])
    assert "never" not in proc.stdout


# -- through the daemon ---------------------------------------------------------------------


@pytest.fixture
def ssh_daemon(ssh_env: dict[str, str], state_dir: Path) -> Iterator[Daemon]:
    with running_daemon(ssh_env, state_dir) as d:
        yield d






def processes_of(user: str, marker: str) -> list[int]:
    """Pids of `user`'s processes whose command line contains `marker`."""
    uid = int(subprocess.run(["id", "-u", user], capture_output=True, text=True).stdout)
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and proc.stat().st_uid == uid and \
                    marker.encode() in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
        except OSError:
            pass
    return found


def test_cancel_kills_the_remote_process_group(
        tmp_path: Path, sshd_hosts: SshHosts, ssh_daemon: Daemon) -> None:
    wf = write(tmp_path / "wf.yaml", inventory(sshd_hosts) + """\
workflow:
  nodes:
    long: {kind: ssh, host: ccd-a, exec: 'sleep 301 & sleep 302; wait'}
""")
    run_id = ssh_daemon.submit(wf)
    wait_for(lambda: len(processes_of(USER, "sleep\0" + "30")) == 2, what="both sleeps there")
    proc = Ccctl(ssh_daemon.env)("cancel", run_id)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ssh_daemon.ended(run_id)["long"]["state"] == "cancelled"
    wait_for(lambda: not processes_of(USER, "sleep\0" + "30"), what="the sleeps to be gone")


def test_two_runs_on_one_host_share_one_connection(
        tmp_path: Path, sshd_hosts: SshHosts, ssh_daemon: Daemon) -> None:
    a = sshd_hosts.servers[0]
    nodes = "\n".join(f"    j{i}: {{kind: ssh, host: ccd-a, exec: 'sleep 0.3; echo j{i}'}}"
                      for i in range(4))
    wf = write(tmp_path / "wf.yaml", inventory(sshd_hosts) + f"workflow:\n  nodes:\n{nodes}\n")
    runs = [ssh_daemon.submit(wf), ssh_daemon.submit(wf)]
    for run_id in runs:
        jobs = ssh_daemon.ended(run_id)
        assert jobs[""]["state"] == "done", jobs[""]
        assert all(jobs[f"j{i}"]["state"] == "done" for i in range(4))
    assert a.accepted() == 1
    with ssh_daemon.http() as http:
        executors = http.get("/api/v1/health").json()["hosts"]["executors"]
    assert executors["ssh:ccd-a"]["connections"] == 1


def link_of(d: Daemon, name: str) -> dict[str, object]:
    return next(h for h in d.hosts() if h["host"] == name)


def remote_status(server: Sshd, run_id: str, job: str) -> str:
    path = server.workdir / "runs" / run_id / "jobs" / job / "status"
    return path.read_text() if path.exists() else ""


def test_kill_9_of_the_daemon_reattaches_and_adopts_what_ended_meanwhile(
        tmp_path: Path, sshd_hosts: SshHosts, ssh_env: dict[str, str], state_dir: Path) -> None:
    b = sshd_hosts.servers[1]
    first, second = sshd_hosts.directory / "release-1", sshd_hosts.directory / "release-2"
    count = b.workdir / "count"
    def gated(name: str, release: Path, then: str) -> str:
        return (f"    {name}: {{kind: ssh, host: ccd-b, exec: 'echo {name} >> {count}; "
                f'echo "# progress=10"; while [ ! -f {release} ]; do sleep 0.05; done; '
                f"{then}'}}\n")
    wf = write(tmp_path / "wf.yaml", inventory(sshd_hosts) + "workflow:\n  nodes:\n"
               + gated("fails", first, "exit 3") + gated("ends", first, "echo ended")
               + gated("runs", second, "echo ran"))

    with running_daemon(ssh_env, state_dir) as d:
        run_id = d.submit(wf)
        wait_for(lambda: all(j.get("progress") == 10 for n, j in d.jobs(run_id).items() if n),
                 what="the three jobs running there")
        d.kill()
        first.touch()  # two end while ccd is away
        wait_for(lambda: "exit=3" in remote_status(b, run_id, "fails")
                 and "exit=0" in remote_status(b, run_id, "ends"), what="two ends there")
        restarted = time.time()
        d.start()
        wait_for(lambda: d.jobs(run_id)["ends"]["state"] == "done", what="the ended job adopted")
        assert d.jobs(run_id)["runs"]["state"] == "running"
        second.touch()
        jobs = d.ended(run_id)
    assert jobs["fails"]["state"] == "failed" and jobs["fails"]["exit_code"] == 3
    assert jobs["ends"]["state"] == "done" and jobs["runs"]["state"] == "done"
    for name in ("fails", "ends"):  # times from the status files there, not the restart
        tstart, tend = jobs[name]["tstart"], jobs[name]["tend"]
        assert isinstance(tstart, float) and isinstance(tend, float)
        assert tstart <= tend <= restarted
    assert sorted(count.read_text().split()) == ["ends", "fails", "runs"]  # each ran once
    logs = state_dir / "runs" / run_id / "jobs"
    assert (logs / "ends" / "log").read_text() == "# progress=10\nended\n"
    assert (logs / "runs" / "log").read_text() == "# progress=10\nran\n"


def test_a_network_cut_leaves_the_job_running_there_and_loses_nothing(
        tmp_path: Path, sshd_hosts: SshHosts, relay: Relay, ssh_env: dict[str, str],
        state_dir: Path) -> None:
    b = relay.server
    release, count = sshd_hosts.directory / "release", b.workdir / "count"
    wf = write(tmp_path / "wf.yaml", inventory(sshd_hosts) + f"""\
  {relay.alias}: {{workdir: {b.workdir}}}
workflow:
  nodes:
    cut:
      kind: ssh
      host: {relay.alias}
      exec: 'echo x >> {count}; echo before; echo "# progress=10";
        while [ ! -f {release} ]; do sleep 0.05; done; echo after'
""")
    with running_daemon(ssh_env, state_dir) as d:
        run_id = d.submit(wf)
        wait_for(lambda: d.jobs(run_id)["cut"]["progress"] == 10, what="the job running")
        relay.freeze()
        wait_for(lambda: link_of(d, relay.alias)["state"] == "unreachable",
                 what="the host shown unreachable")
        release.touch()  # the job ends there while the link is down
        wait_for(lambda: "exit=0" in remote_status(b, run_id, "cut"), what="its end there")
        assert d.jobs(run_id)["cut"]["state"] == "running"  # lost is not failed
        assert "connection lost" in str(link_of(d, relay.alias)["error"])
        relay.thaw()
        jobs = d.ended(run_id)
        assert link_of(d, relay.alias)["state"] == "connected"
    assert jobs["cut"]["state"] == "done"
    assert (state_dir / "runs" / run_id / "jobs" / "cut" / "log").read_text() == "before\n" \
        "# progress=10\nafter\n"
    assert count.read_text() == "x\n"  # ran once
    assert relay.connections >= 2  # it reconnected



def test_a_server_with_fewer_sessions_than_assumed_slows_starts_and_fails_none(
        tmp_path: Path, env: dict[str, str], ccctl: Ccctl) -> None:
    fan = 12
    nodes = "\n".join(f"    j{i}: {{kind: ssh, host: ccd-a, exec: 'sleep 0.5; echo j{i}'}}"
                      for i in range(fan))
    with ssh_hosts(max_sessions=3) as hosts:  # the inventory assumes OpenSSH's 10
        a = hosts.servers[0]
        wf = write(tmp_path / "wf.yaml", f"""\
hosts:
  ccd-a: {{{explicit(hosts, a)}, max_jobs: {fan}}}
workflow:
  nodes:
{nodes}
""")
        proc = ccctl("run", wf, "--json", "--max-jobs", str(fan), timeout=120)
        refused = a.log_text().count("no more sessions")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    jobs = jobs_of(proc)
    assert all(jobs[f"j{i}"]["state"] == "done" for i in range(fan))
    assert refused > 0  # the server did refuse channels


def test_hostile_strings_reach_the_job_as_written_and_run_nothing(
        tmp_path: Path, sshd_hosts: SshHosts, ssh_ccctl: Ccctl) -> None:
    a = sshd_hosts.servers[0]
    pwned = sshd_hosts.directory / "pwned"
    hostile = (f"it's \"q\" $(touch {pwned}-1) `touch {pwned}-2`; touch {pwned}-3 "
               f"& touch {pwned}-4 | * ~ \\ $HOME")
    workdir = f"{a.workdir}/w {hostile}"
    script = "my script $(x); `y`.sh"
    write(tmp_path / script, 'printf "%s\\n" "$V" "$PWD" "$0"\n')
    cwd = "sub " + hostile.replace("/", "_").replace("*", "")
    write(tmp_path / cwd / "here.txt", "")
    wf = write(tmp_path / "wf.yaml", f"""\
hosts:
  ccd-a: {{workdir: {json.dumps(workdir)}}}
files: [{json.dumps(cwd + "/*.txt")}]
workflow:
  nodes:
    hostile:
      kind: ssh
      host: ccd-a
      script: {json.dumps(script)}
      cwd: {json.dumps(cwd)}
      env: {{V: {json.dumps(hostile)}}}
""")
    proc = ssh_ccctl("run", wf, "--json", timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    jobs = jobs_of(proc)
    remote_work = f"{workdir}/runs/{jobs['']['run']}/work"
    assert log_of(jobs, "hostile").splitlines() == [
        hostile, f"{remote_work}/{cwd}", f"{remote_work}/{script}"]
    assert not list(sshd_hosts.directory.glob("pwned*"))
