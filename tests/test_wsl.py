"""`kind: wsl`: the command lines given to wsl.exe, the scripts, the translation of paths
between Windows and WSL, and the whole job protocol (start, poll, log, progress, exit code,
cancel, attempts) run for real on Linux through a stand-in wsl.exe.

The stand-in is not WSL: a small sh script placed first on PATH that checks and drops
wsl.exe's flags and runs `sh -s`. No test here runs on Windows or in a real WSL."""

from __future__ import annotations

import asyncio
import os
import shlex
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Ccctl, jobs_of, log_of, write
from hypothesis import given
from hypothesis import strategies as st

from ccd.errors import ExecutorError
from ccd.executors import executor_for
from ccd.executors.links import Link
from ccd.executors.protocol import Launch, Observation
from ccd.executors.ssh import WRAPPER_NAME, _Job
from ccd.executors.wsl import (
    WslExecutor,
    WslLink,
    distribution_of,
    windows_path,
    wsl_argv,
    wsl_path,
)
from ccd.model import JobSpec

HOSTILE = "it's \"$(echo no)\" `echo no` $HOME \\ ; | & * ~ end"

# -- wsl.exe's command line -----------------------------------------------------------------


def test_the_default_distribution_runs_sh_with_no_distribution_flag() -> None:
    assert wsl_argv(distribution_of("localhost"), None) == ["wsl.exe", "--exec", "sh", "-s"]
    assert wsl_argv(distribution_of(""), None) == ["wsl.exe", "--exec", "sh", "-s"]


def test_a_named_distribution_and_a_user_come_before_exec() -> None:
    assert wsl_argv(distribution_of("Ubuntu-22.04"), "me") == [
        "wsl.exe", "--distribution", "Ubuntu-22.04", "--user", "me", "--exec", "sh", "-s"]
    assert WslLink("Debian", None).argv() == [
        "wsl.exe", "--distribution", "Debian", "--exec", "sh", "-s"]
    assert WslLink("", "root").argv() == ["wsl.exe", "--user", "root", "--exec", "sh", "-s"]


@pytest.mark.parametrize("distro, user", [
    ("--system", None), ("Ubuntu", "-u"), ("a b", None), ("x;rm", None), ("", "$(id)"),
    ("Ubuntu\n", None), ("", "me\\you")])
def test_a_distribution_or_user_that_could_be_read_as_a_flag_or_worse_is_refused(
        distro: str, user: str | None) -> None:
    with pytest.raises(ExecutorError, match="cannot name a WSL distribution or user"):
        WslLink(distro, user)


def test_the_link_names_what_it_reaches() -> None:
    assert WslLink("", None).target == "default distribution"
    assert WslLink("Ubuntu", "me").target == "me@Ubuntu"


# -- paths ----------------------------------------------------------------------------------


@pytest.mark.parametrize("windows, wsl", [
    (r"C:\Users\me\AppData\Local\ccd", "/mnt/c/Users/me/AppData/Local/ccd"),
    ("c:\\", "/mnt/c"),
    ("D:/data/my files/run 1", "/mnt/d/data/my files/run 1"),
    (r"C:\Users\me\\two\\seps\\", "/mnt/c/Users/me/two/seps"),
    (r"C:\Users\O'Brien\$(rm -rf ~)\`id` & ;%PATH%!",
     "/mnt/c/Users/O'Brien/$(rm -rf ~)/`id` & ;%PATH%!"),
    ("C:\\Users\\Zoë\\数据 #1, {a}", "/mnt/c/Users/Zoë/数据 #1, {a}"),
    (r"C:\a\..\b", "/mnt/c/a/../b"),
    (r"\\?\C:\very\long\path", "/mnt/c/very/long/path"),
    (r"\\wsl$\Ubuntu\home\me\ccd", "/home/me/ccd"),
    (r"\\wsl.localhost\Ubuntu-22.04\home\me", "/home/me"),
    (r"\\WSL.LOCALHOST\Ubuntu\\", "/"),
])
def test_a_windows_path_is_written_as_wsl_sees_it(windows: str, wsl: str) -> None:
    assert wsl_path(windows) == wsl


@pytest.mark.parametrize("windows, why", [
    (r"Users\me", "not an absolute Windows path"),
    (r"C:relative\to\cwd", "not an absolute Windows path"),
    (r"\no\drive", "not an absolute Windows path"),
    (r"\\server\share\x", "WSL does not see it"),
])
def test_a_windows_path_wsl_cannot_see_is_an_error(windows: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        wsl_path(windows)


def test_a_path_in_another_distribution_is_an_error() -> None:
    assert wsl_path(r"\\wsl$\ubuntu\home", "Ubuntu") == "/home"  # names ignore case
    with pytest.raises(ValueError, match="in distribution 'Debian', not 'Ubuntu'"):
        wsl_path(r"\\wsl$\Debian\home", "Ubuntu")


@pytest.mark.parametrize("wsl, windows", [
    ("/mnt/c/Users/me/ccd", r"C:\Users\me\ccd"),
    ("/mnt/c", "C:\\"),
    ("/mnt/c/", "C:\\"),
    ("/mnt/z/my files/$(x) `y` 'z'", r"Z:\my files\$(x) `y` 'z'"),
    ("/mnt/c//double//", r"C:\double"),
    ("/home/me/ccd", r"\\wsl.localhost\Ubuntu\home\me\ccd"),
    ("/mnt/cdrom/x", r"\\wsl.localhost\Ubuntu\mnt\cdrom\x"),
    ("/mnt", r"\\wsl.localhost\Ubuntu\mnt"),
])
def test_a_wsl_path_is_written_as_windows_sees_it(wsl: str, windows: str) -> None:
    assert windows_path(wsl, "Ubuntu") == windows


@pytest.mark.parametrize("wsl, distro, why", [
    ("relative/x", "Ubuntu", "not an absolute path"),
    ("/mnt/c/a\\b", "Ubuntu", "has a backslash"),
    ("/home/me", "", "distribution whose name is not known"),
])
def test_a_wsl_path_windows_cannot_write_is_an_error(wsl: str, distro: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        windows_path(wsl, distro)


_NAMES = st.text(st.characters(blacklist_characters='\\/:*?"<>|', blacklist_categories=["Cs"],
                               min_codepoint=32), min_size=1, max_size=12
                 ).filter(lambda s: s.strip(" .") == s and s not in (".", ".."))


@given(st.sampled_from("cdZ"), st.lists(_NAMES, max_size=5))
def test_a_drive_path_goes_to_wsl_and_back_unchanged(drive: str, names: list[str]) -> None:
    windows = f"{drive.upper()}:\\" + "\\".join(names)
    assert windows_path(wsl_path(windows), "Ubuntu") == windows


@given(st.lists(_NAMES, min_size=1, max_size=5))
def test_a_path_inside_the_distribution_goes_to_windows_and_back_unchanged(
        names: list[str]) -> None:
    wsl = "/" + "/".join(names)
    if wsl.startswith("/mnt/"):
        return
    assert wsl_path(windows_path(wsl, "Ubuntu"), "Ubuntu") == wsl


def test_on_windows_the_link_writes_the_state_directory_as_wsl_sees_it_and_back() -> None:
    link = WslLink("Ubuntu", None, windows=True)
    assert link.there(r"C:\Users\me\ccd state") == "/mnt/c/Users/me/ccd state"
    assert link.here_of("/mnt/c/Users/me/ccd state/runs") == r"C:\Users\me\ccd state\runs"
    with pytest.raises(ExecutorError, match=r"WSL \(Ubuntu\):.*WSL does not see it"):
        link.there(r"\\server\share\ccd")
    with pytest.raises(OSError, match="has a backslash"):
        link.here_of("/mnt/c/a\\b")


# -- the scripts ----------------------------------------------------------------------------


def _launch(tmp: Path, job: JobSpec, run_id: str = "r1") -> Launch:
    run_dir = tmp / "state" / "runs" / run_id
    return Launch(run_id, job, run_dir, run_dir / "work")


def test_the_start_script_detaches_the_wrapper_and_quotes_every_value(tmp_path: Path) -> None:
    ex = WslExecutor("Ubuntu", lambda obs: None)
    job = JobSpec("a", kind="wsl", host="Ubuntu", exec=f"echo {shlex.quote(HOSTILE)}",
                  env=(("X", HOSTILE), ("Y", "")), cwd="sub dir/$(x)")
    launch = _launch(tmp_path, job)
    link = ex._link(launch)
    root = "/mnt/c/Users/O'Brien/ccd `state` $(x)"
    script = ex._start_script(_Job(launch, link, tmp_path, "starting", root=root))
    lines = script.splitlines()
    assert lines[0] == ("command -v setsid >/dev/null || "
                        "{ echo 'setsid not found (util-linux)' >&2; exit 1; }")
    d, w = f"{root}/runs/r1/jobs/a", f"{root}/runs/r1/work"
    assert shlex.split(lines[1]) == [f"d={d}", f"w={w}"]
    exports = [shlex.split(line) for line in lines[3:] if line.startswith("export ")]
    assert exports == [["export", f"X={HOSTILE}"], ["export", "Y="]]
    start = next(line for line in lines if line.startswith("setsid "))
    assert shlex.split(start) == [
        "setsid", "sh", f"{root}/{WRAPPER_NAME}", d, f"{w}/sub dir/$(x)", "",
        f"echo {shlex.quote(HOSTILE)}", "</dev/null", ">/dev/null", "2>&1", "&"]
    assert lines[-1] == 'echo "$!"'


def test_a_distribution_ccd_cannot_name_fails_the_job_and_says_why(tmp_path: Path) -> None:
    ex = WslExecutor("Ubuntu", lambda obs: None)
    with pytest.raises(ExecutorError, match="'-u' cannot name"):
        ex._link(_launch(tmp_path, JobSpec("a", kind="wsl", exec="true", user="-u")))


# -- the protocol through a stand-in wsl.exe ------------------------------------------------

STAND_IN = """\
#!/bin/sh
# A stand-in for wsl.exe on Linux, for tests only: this is not WSL. It logs its flags, checks
# them as wsl.exe parses them, refuses a script that names a file by its Windows-side path
# ($CCD_TEST_HERE: every path there must be written as WSL writes it), then runs `sh -s`.
printf '%s\\n' "$*" >> "$CCD_TEST_WSL_LOG"
while [ $# -gt 0 ]; do
    case $1 in
        --distribution) WSL_DISTRO_NAME=$2; export WSL_DISTRO_NAME; shift 2 ;;
        --user) shift 2 ;;
        --exec) shift; break ;;
        *) echo "wsl.exe stand-in: unknown flag $1" >&2; exit 1 ;;
    esac
done
[ "$*" = "sh -s" ] || { echo "wsl.exe stand-in: not --exec sh -s: $*" >&2; exit 1; }
script=$(cat)
if [ -n "$CCD_TEST_HERE" ]; then
    case $script in *"$CCD_TEST_HERE"*)
        echo "wsl.exe stand-in: a Windows-side path in the script" >&2; exit 1 ;;
    esac
fi
printf '%s\\n' "$script" | exec sh -s
"""


@pytest.fixture
def stand_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """wsl.exe first on PATH; returns the log of its command lines."""
    bin_dir = tmp_path / "bin"
    write(bin_dir / "wsl.exe", STAND_IN, mode=0o755)
    log = tmp_path / "wsl.log"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("CCD_TEST_WSL_LOG", str(log))
    return log


class Drive:
    """A "Windows drive" for the test: this machine sees it at `here`, the stand-in at
    `there` (a symlink to it, as WSL sees C: at /mnt/c): every path crosses the seam."""

    def __init__(self, tmp: Path) -> None:
        self.here = tmp / "C"
        self.there = tmp / "mnt" / "c"
        self.here.mkdir()
        self.there.parent.mkdir()
        self.there.symlink_to(self.here)

    def link(self, distro: str, user: str | None) -> WslLink:
        drive = self

        class DriveLink(WslLink):
            def there(self, path: str) -> str:
                return str(drive.there / Path(path).relative_to(drive.here))

            def here_of(self, path: str) -> str:
                return str(drive.here / Path(path).relative_to(drive.there))

        return DriveLink(distro, user)


class Harness:
    """A WslExecutor on `drive`, its observations, and a way to wait for one."""

    def __init__(self, drive: Drive, host: str = "Ubuntu-Test") -> None:
        self.seen: list[Observation] = []
        self.changed = asyncio.Event()
        self.ex = WslExecutor(host, self._deliver, tick=0.05)
        self.ex._link = self._link  # type: ignore[method-assign]
        self.drive = drive

    def _deliver(self, obs: Observation) -> None:
        self.seen.append(obs)
        self.changed.set()

    def _link(self, launch: Launch) -> Link:
        link = self.ex._links.get(launch.job.user)
        if link is None:
            link = self.ex._links[launch.job.user] = self.drive.link(self.ex.distro,
                                                                     launch.job.user)
        return link

    def launch(self, job: JobSpec) -> Launch:
        launch = _launch(self.drive.here, job)
        launch.work.mkdir(parents=True, exist_ok=True)
        return launch

    async def until(self, name: str, what: Callable[[Observation], bool]) -> Observation:
        async with asyncio.timeout(20):
            while True:
                for obs in self.seen:
                    if obs.name == name and what(obs):
                        return obs
                self.changed.clear()
                await self.changed.wait()


def test_jobs_run_through_wsl_exe_with_their_log_progress_exit_code_and_hostile_values(
        tmp_path: Path, stand_in: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    drive = Drive(tmp_path)
    monkeypatch.setenv("CCD_TEST_HERE", str(drive.here))
    h = Harness(drive)
    ok = h.launch(JobSpec("ok", kind="wsl", host="Ubuntu-Test", user="me",
                          exec='printf "%s\\n" "$X"; echo "# progress=50"; pwd; exit 3',
                          env=(("X", HOSTILE + "\n second line"),), cwd="it's a $(dir)"))
    (ok.work / "it's a $(dir)").mkdir()
    there = drive.there / "state" / "runs" / "r1"

    async def scenario() -> Observation:
        try:
            await h.ex.start(ok)
            return await h.until("ok", lambda o: o.ended)
        finally:
            await h.ex.aclose()

    ended = asyncio.run(scenario())
    assert ended.exit_code == 3 and ended.progress == 50, ended
    assert (ok.run_dir / "jobs" / "ok" / "log").read_text() == (
        f"{HOSTILE}\n second line\n# progress=50\n{there}/work/it's a $(dir)\n")
    assert any(o.name == "ok" and o.pid for o in h.seen)  # reported running with its pid
    calls = stand_in.read_text().splitlines()
    assert calls and set(calls) == {"--distribution Ubuntu-Test --user me --exec sh -s"}
    assert (drive.here / "state" / WRAPPER_NAME).is_file()  # written through the link


def test_cancel_ends_the_job_and_its_children_and_attempts_are_set_aside(
        tmp_path: Path, stand_in: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    drive = Drive(tmp_path)
    monkeypatch.setenv("CCD_TEST_HERE", str(drive.here))
    h = Harness(drive, host="localhost")
    slow = h.launch(JobSpec("slow", kind="wsl", exec="sleep 60 & echo $! > child; wait"))

    async def scenario() -> tuple[Observation, int]:
        try:
            await h.ex.start(slow)
            await h.until("slow", lambda o: o.pid is not None)
            child = slow.work / "child"
            async with asyncio.timeout(10):
                while not child.is_file() or not child.read_text().strip():
                    await asyncio.sleep(0.02)
            await h.ex.cancel(slow)
            ended = await h.until("slow", lambda o: o.ended)
            assert await h.ex.attempts(slow) == 0
            await h.ex.archive(slow)
            assert await h.ex.attempts(slow) == 1
            return ended, int(child.read_text())
        finally:
            await h.ex.aclose()

    ended, child = asyncio.run(scenario())
    assert ended.exit_code == 128 + signal.SIGTERM, ended
    assert _ends(child)  # the job's child went with it: its process group was signalled
    assert (slow.run_dir / "jobs" / "slow@1" / "status").is_file()
    assert set(stand_in.read_text().splitlines()) == {"--exec sh -s"}  # default distribution


def _ends(pid: int, within: float = 5.0) -> bool:
    """The process is gone, or a zombie, within `within` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return True
        except FileNotFoundError:
            return True
        time.sleep(0.02)
    return False


def test_without_wsl_exe_the_job_fails_saying_so(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    h = Harness(Drive(tmp_path))
    job = h.launch(JobSpec("a", kind="wsl", exec="true"))

    async def scenario() -> Observation:
        try:
            await h.ex.start(job)
            return await h.until("a", lambda o: o.ended)
        finally:
            await h.ex.aclose()

    ended = asyncio.run(scenario())
    assert ended.exit_code is None and "cannot run wsl.exe" in ended.message, ended


def test_a_workflow_of_kind_wsl_runs_from_ccctl_through_the_stand_in(
        tmp_path: Path, env: dict[str, str], stand_in: Path) -> None:
    """On Linux, this machine's paths are written in scripts as they are: this checks that
    `kind: wsl` reaches the WSL executor and that a run goes through wsl.exe."""
    wf = write(tmp_path / "wf.yaml", """\
        workflow:
          nodes:
            first: {kind: wsl, exec: 'echo "# progress=100"; echo from wsl > out.txt'}
            here: {exec: 'cat out.txt'}
            fails: {kind: wsl, host: Ubuntu-Test, exec: 'exit 4'}
          dependencies: ['first,here']
        """)
    env = {**env, "PATH": os.environ["PATH"], "CCD_TEST_WSL_LOG": str(stand_in)}
    proc = Ccctl(env)("run", wf, "--json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    jobs = jobs_of(proc)
    assert [jobs[n]["state"] for n in ("first", "here", "fails")] == ["done", "done", "failed"], \
        [(jobs[n]["message"], jobs[n]["exit_code"]) for n in ("first", "here", "fails")]
    assert jobs["first"]["progress"] == 100 and jobs["fails"]["exit_code"] == 4, jobs["fails"]
    assert log_of(jobs, "here") == "from wsl\n"
    assert {"--exec sh -s", "--distribution Ubuntu-Test --exec sh -s"} == set(
        stand_in.read_text().splitlines())


def test_executor_for_makes_a_wsl_executor_for_the_named_distribution() -> None:
    ex = executor_for("wsl", "Ubuntu-22.04", lambda obs: None, lambda: None)
    assert isinstance(ex, WslExecutor) and ex.distro == "Ubuntu-22.04"
    assert isinstance(executor_for("wsl", "localhost", lambda obs: None, lambda: None),
                      WslExecutor)
