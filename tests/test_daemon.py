"""The daemon as clients meet it: a real `ccd` process, its Unix socket and its TCP port."""

from __future__ import annotations

import io
import json
import os
import pty
import select
import signal
import socket
import stat
import subprocess
import sys
import tarfile
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import ROOT, Ccctl, Daemon, running_daemon, wait_for

EXAMPLE = ROOT / "examples" / "workflow-example"

QUICK = """\
workflow:
  nodes:
    start:
    a: {exec: 'echo a; echo "# progress=50"'}
    b: {exec: 'echo b >&2'}
    end:
  dependencies: ['start,a,b,end']
"""


def tar_of(files: dict[str, bytes], gz: bool = True) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz" if gz else "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def upload(http: httpx.Client, text: str, name: str = "quick") -> httpx.Response:
    return http.post("/api/v1/workflows", content=text.encode(),
                     params={"name": name, "filename": f"{name}.yaml"})


def run_to_end(http: httpx.Client, workflow: str) -> dict[str, Any]:
    run = http.post("/api/v1/runs", json={"workflow": workflow}).json()
    wait_for(lambda: http.get(f"/api/v1/runs/{run['run']}").json()["state"] != "running",
             what="the run to end")
    result: dict[str, Any] = http.get(f"/api/v1/runs/{run['run']}").json()
    return result


def events(http: httpx.Client, path: str, until_run_ends: bool = True,
           after: int | None = None, out: list[dict[str, Any]] | None = None
           ) -> list[dict[str, Any]]:
    """Read an SSE stream until the run's final event, appending to `out` as they come."""
    out = [] if out is None else out
    headers = {"Last-Event-ID": str(after)} if after is not None else {}
    with http.stream("GET", path, headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        data = ""
        for line in response.iter_lines():
            if line.startswith("data:"):
                data += line[5:].strip()
            elif not line and data:
                event = json.loads(data)
                data = ""
                out.append(event)
                if until_run_ends and event["job"] is None and event["state"] != "running":
                    break
    return out


# -- sockets and auth -----------------------------------------------------------------------


def test_unix_socket_is_private_and_needs_no_token(daemon: Daemon) -> None:
    assert stat.S_IMODE(daemon.socket.stat().st_mode) == 0o600
    assert stat.S_IMODE(daemon.socket.parent.stat().st_mode) == 0o700
    with daemon.http() as http:
        assert http.get("/api/v1/health").json()["status"] == "ok"


def test_the_state_directory_and_database_are_private(daemon: Daemon, state_dir: Path) -> None:
    wait_until_serving(daemon.env)
    db = state_dir / "ccd.db"
    modes = {p.name: stat.S_IMODE(p.stat().st_mode)
             for p in (state_dir, db, Path(f"{db}-wal"), Path(f"{db}-shm"))}
    assert modes == {"state": 0o700, "ccd.db": 0o600, "ccd.db-wal": 0o600,
                     "ccd.db-shm": 0o600}


def test_tcp_needs_the_token(daemon: Daemon) -> None:
    token = Path(daemon.env["XDG_CONFIG_HOME"], "ccd", "token")
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    assert httpx.get(f"{daemon.url}/api/v1/runs").status_code == 401
    assert httpx.get(f"{daemon.url}/api/v1/runs",
                     headers={"Authorization": "Bearer wrong"}).status_code == 401
    ok = httpx.get(f"{daemon.url}/api/v1/runs",
                   headers={"Authorization": f"Bearer {daemon.token}"})
    assert ok.status_code == 200 and ok.json() == []


def test_foreign_host_and_cross_origin_requests_are_refused(daemon: Daemon) -> None:
    auth = {"Authorization": f"Bearer {daemon.token}"}
    rebound = httpx.get(f"{daemon.url}/api/v1/runs", headers={**auth, "Host": "evil.example"})
    assert rebound.status_code == 421
    cross = httpx.post(f"{daemon.url}/api/v1/runs", json={"workflow": "x"},
                       headers={**auth, "Origin": "http://evil.example"})
    assert cross.status_code == 403
    same = httpx.post(f"{daemon.url}/api/v1/runs", json={"workflow": "x"},
                      headers={**auth, "Origin": daemon.url})
    assert same.status_code == 404  # allowed through; the workflow does not exist


def test_login_link_sets_a_strict_httponly_cookie_once(daemon: Daemon) -> None:
    with httpx.Client() as browser:
        first = browser.get(daemon.login)
        assert first.status_code == 303 and first.headers["location"] == "/"
        cookie = first.headers["set-cookie"].lower()
        assert cookie.startswith(f"ccd_session_{daemon.port}=")  # cookies ignore the port
        assert "httponly" in cookie and "samesite=strict" in cookie
        assert "max-age=604800" in cookie  # a week
        assert browser.get(f"{daemon.url}/api/v1/runs").status_code == 200
    assert httpx.get(daemon.login).status_code == 403  # one time only


PAGE = {"Sec-Fetch-Site": "same-origin"}  # what the browser adds to the page's own requests


def session(daemon: Daemon) -> dict[str, str]:
    """The Cookie header of a fresh login."""
    with daemon.http() as http:
        link = http.post("/api/v1/login-links").json()["path"]
    answer = httpx.get(daemon.url + link)
    assert answer.status_code == 303
    name = f"ccd_session_{daemon.port}"
    return {"Cookie": f"{name}={answer.cookies[name]}"}


def test_each_login_is_its_own_session_and_a_logout_ends_only_that_one(daemon: Daemon) -> None:
    first, second = session(daemon), session(daemon)
    assert first != second
    out = httpx.post(f"{daemon.url}/logout", headers={**first, **PAGE})
    assert out.status_code == 204
    assert out.headers["set-cookie"].startswith(f'ccd_session_{daemon.port}=""; ')
    assert "max-age=0" in out.headers["set-cookie"].lower()
    assert httpx.get(f"{daemon.url}/api/v1/runs", headers=first).status_code == 401
    assert httpx.get(f"{daemon.url}/api/v1/runs", headers=second).status_code == 200


def test_sessions_and_logouts_survive_a_restart(daemon: Daemon) -> None:
    gone, kept = session(daemon), session(daemon)
    assert httpx.post(f"{daemon.url}/logout", headers={**gone, **PAGE}).status_code == 204
    daemon.stop()
    daemon.start()
    assert httpx.get(f"{daemon.url}/api/v1/runs", headers=kept).status_code == 200
    assert httpx.get(f"{daemon.url}/api/v1/runs", headers=gone).status_code == 401


def test_a_session_cookie_changes_nothing_from_another_origin(daemon: Daemon) -> None:
    cookie = session(daemon)
    run = f"{daemon.url}/workflow/run/quick"
    with daemon.http() as http:
        upload(http, QUICK)
        for foreign in ({"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"},
                        {"Origin": "http://127.0.0.1:9"}, {}):
            refused = httpx.get(run, headers={**cookie, **foreign})
            assert refused.status_code == 403, foreign
            assert "refused" in refused.json()["error"] if "Origin" in foreign else \
                "ccd's own page" in refused.json()["error"]
        posted = httpx.post(f"{daemon.url}/api/v1/runs", json={"workflow": "quick"},
                            headers={**cookie, "Sec-Fetch-Site": "cross-site"})
        assert posted.status_code == 403
        assert http.get("/api/v1/runs").json() == []  # nothing started
        page = httpx.post(f"{daemon.url}/api/v1/runs", json={"workflow": "quick"},
                          headers={**cookie, **PAGE, "Origin": daemon.url})
        assert page.status_code == 201
        curl = httpx.get(run, headers={"Authorization": f"Bearer {daemon.token}"})
        assert curl.status_code == 201  # the paper's call, with the token
        assert httpx.get(f"{daemon.url}/api/v1/runs", headers={
            **cookie, "Sec-Fetch-Site": "cross-site"}).status_code == 200  # reading is fine
        for r in (page.json(), curl.json()):
            wait_for(lambda r=r: http.get(f"/api/v1/runs/{r['run']}").json()["state"] == "done",
                     what="the runs to end")


@pytest.mark.parametrize("credential", [
    b"Authorization: Bearer \xff\xfe", b"Authorization: \xe9",
    b"Cookie: ccd_session=\xff; ccd_session_PORT=\xff",
    b"Cookie: \xe9=1; ccd_session_PORT=\xb2\xb3.\xb9; ccd_session=\xb2"])
def test_credentials_with_non_ascii_bytes_are_401_not_500(daemon: Daemon,
                                                           credential: bytes) -> None:
    host, port = daemon.url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(b"GET /api/v1/runs HTTP/1.1\r\nHost: " + daemon.url[7:].encode() +
                     b"\r\n" + credential.replace(b"PORT", port.encode()) +
                     b"\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 401 "), answer[:200]


def test_the_login_link_is_printed_only_to_a_terminal_or_when_asked(
        env: dict[str, str], state_dir: Path) -> None:
    command = [sys.executable, "-m", "ccd", "--state-dir", str(state_dir), "--port", "0"]
    piped = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)  # as under systemd: stdout goes to the journal
    try:
        assert piped.stdout is not None
        assert piped.stdout.readline().startswith("ccd http://")
        second = piped.stdout.readline()
        wait_until_serving(env)
    finally:
        piped.terminate()
        piped.communicate(timeout=30)
    assert "code=" not in second and "`ccctl open`" in second

    controller, terminal = pty.openpty()
    tty = subprocess.Popen(command, env=env, stdout=terminal, stderr=subprocess.PIPE)
    os.close(terminal)
    try:
        seen = b""
        while b"login: " not in seen or not seen.endswith(b"\n"):
            ready, _, _ = select.select([controller], [], [], 30)
            assert ready, f"no login line on the terminal: {seen!r}"
            seen += os.read(controller, 4096)
        wait_until_serving(env)
    finally:
        tty.terminate()
        tty.communicate(timeout=30)
        os.close(controller)
    assert b"/login?code=" in seen


def wait_until_serving(env: dict[str, str]) -> None:
    """Until the daemon answers: a SIGTERM before it serves would not stop it."""
    sock = Path(env["XDG_RUNTIME_DIR"]) / "ccd" / "ccd.sock"

    def answers() -> bool:
        try:
            with httpx.Client(transport=httpx.HTTPTransport(uds=str(sock))) as http:
                return http.get("http://localhost/api/v1/health").status_code == 200
        except httpx.TransportError:
            return False

    wait_for(answers, what="the daemon to serve")


# -- workflows --------------------------------------------------------------------------------


def test_upload_yaml_tar_and_multipart_then_list_get_delete(daemon: Daemon) -> None:
    with daemon.http() as http:
        assert upload(http, QUICK).status_code == 201
        files = {p.name: p.read_bytes() for p in EXAMPLE.iterdir()}
        r = http.post("/api/v1/workflows", content=tar_of(files), params={"name": "example"})
        assert r.status_code == 201 and r.json()["jobs"] == 5
        r = http.post("/api/v1/workflows", files={"file": ("multi.yaml", QUICK.encode())})
        assert r.status_code == 201 and r.json()["name"] == "multi"
        assert [w["name"] for w in http.get("/api/v1/workflows").json()] == \
            ["example", "multi", "quick"]
        assert "start,a,b,end" in http.get("/api/v1/workflows/quick").json()["yaml"]
        assert http.delete("/api/v1/workflows/multi").status_code == 204
        assert http.get("/api/v1/workflows/multi").status_code == 404


def test_invalid_workflow_is_422_with_file_line_col(daemon: Daemon) -> None:
    with daemon.http() as http:
        r = upload(http, "workflow:\n  nodes: {a: {kind: nope}}\n", name="bad")
        assert r.status_code == 422
        assert r.json()["problems"] == [
            "bad.yaml:2:21: unknown kind 'nope'; expected one of local, ssh, slurm, lsf, wsl"]
        assert http.get("/api/v1/workflows").json() == []  # nothing half-stored


@pytest.mark.parametrize(("member", "kind"), [
    ("../escape.sh", tarfile.REGTYPE), ("/etc/evil", tarfile.REGTYPE),
    ("link.sh", tarfile.SYMTYPE), ("dev", tarfile.CHRTYPE),
])
def test_hostile_archives_are_refused(daemon: Daemon, state_dir: Path, member: str,
                                      kind: bytes) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("w.yaml")
        info.size = len(QUICK)
        tar.addfile(info, io.BytesIO(QUICK.encode()))
        evil = tarfile.TarInfo(member)
        evil.type = kind
        evil.linkname = "/etc/passwd"
        tar.addfile(evil, io.BytesIO(b"") if kind == tarfile.REGTYPE else None)
    with daemon.http() as http:
        r = http.post("/api/v1/workflows", content=buffer.getvalue())
        assert r.status_code == 400, r.text
        assert member.lstrip("/") in r.json()["error"] or member in r.json()["error"]
    assert not (state_dir.parent / "escape.sh").exists()
    assert not any((state_dir / "workflows").glob("*/*/*"))


def test_oversize_upload_is_413_and_unknown_ids_404(daemon: Daemon) -> None:
    with daemon.http() as http:
        r = http.post("/api/v1/workflows", content=b"#" * (33 * 1024 * 1024))
        assert r.status_code == 413
        assert http.get("/api/v1/runs/nope").status_code == 404
        assert http.post("/api/v1/runs", json={"workflow": "nope"}).status_code == 404
        assert http.get("/api/v1/runs/nope/jobs/x/log").status_code == 404


# -- runs, logs, graph, events ----------------------------------------------------------------


def test_run_reports_every_job_with_state_progress_times_and_host(daemon: Daemon) -> None:
    with daemon.http() as http:
        upload(http, QUICK)
        run = run_to_end(http, "quick")
        assert run["state"] == "done"
        jobs = {j["name"]: j for j in run["jobs"]}
        assert [jobs[n]["state"] for n in ("start", "a", "b", "end")] == ["done"] * 4
        assert jobs["a"]["host"] == "localhost" and jobs["a"]["exit_code"] == 0
        assert jobs["a"]["tstart"] <= jobs["a"]["tend"] <= jobs["b"]["tstart"]
        log = http.get(f"/api/v1/runs/{run['run']}/jobs/a/log")
        assert log.text == "a\n# progress=50\n" and log.headers["X-Log-Next"] == "16"
        assert http.get(f"/api/v1/runs/{run['run']}/jobs/a/log",
                        params={"offset": 2, "limit": 3}).text == "# p"
        assert http.get(f"/api/v1/runs/{run['run']}/jobs/a/log",
                        params={"tail": 4}).text == "=50\n"
        assert http.get(f"/api/v1/runs/{run['run']}/jobs/b/log").text == "b\n"
        dot = http.get(f"/api/v1/runs/{run['run']}/graph").text
        assert dot.startswith("digraph") and '"a" -> "b"' in dot
        svg = http.get(f"/api/v1/runs/{run['run']}/graph", params={"format": "svg"})
        assert svg.status_code == 200 and "<svg" in svg.text


def test_events_stream_every_change_and_resume_after_last_event_id(daemon: Daemon) -> None:
    with daemon.http() as http:
        upload(http, QUICK)
        run = run_to_end(http, "quick")
        path = f"/api/v1/runs/{run['run']}/events"
        seen = events(http, path)
        assert [(e["job"], e["state"]) for e in seen] == [
            (None, "running"), ("start", "done"), ("a", "running"), ("a", "done"),
            ("b", "running"), ("b", "done"), ("end", "done"), (None, "done")]
        ids = [e["id"] for e in seen]
        assert ids == sorted(ids)
        rest = events(http, path, after=ids[3])
        assert [e["id"] for e in rest] == ids[4:]


def test_live_events_arrive_while_the_run_goes(daemon: Daemon, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    wf = QUICK.replace("echo a;", f"while [ ! -f {gate} ]; do sleep 0.02; done; echo a;")
    got: list[dict[str, Any]] = []
    with daemon.http() as http:
        upload(http, wf)

        def listen() -> None:
            with daemon.http() as h:
                events(h, "/api/v1/events", out=got)

        listener = threading.Thread(target=listen)
        listener.start()
        wait_for(lambda: http.get("/api/v1/health").json()["event_subscribers"] == 1,
                 what="the listener to connect")
        run = http.post("/api/v1/runs", json={"workflow": "quick"}).json()
        wait_for(lambda: any(e["job"] == "a" and e["state"] == "running" for e in got),
                 what="a's start to be pushed while a waits")
        gate.touch()
        listener.join(timeout=30)
    assert got[-1] == {**got[-1], "run": run["run"], "job": None, "state": "done"}


def test_cancel_and_rerun(daemon: Daemon, tmp_path: Path) -> None:
    wf = QUICK.replace("echo a;", "sleep 60;")
    with daemon.http() as http:
        upload(http, wf)
        run = http.post("/api/v1/runs", json={"workflow": "quick"}).json()
        wait_for(lambda: http.get(f"/api/v1/runs/{run['run']}").json()["counts"]
                 .get("running"), what="a to run")
        assert http.post(f"/api/v1/runs/{run['run']}/rerun").status_code == 409
        assert http.post(f"/api/v1/runs/{run['run']}/cancel").status_code == 202
        wait_for(lambda: http.get(f"/api/v1/runs/{run['run']}").json()["state"] == "cancelled",
                 what="the run to be cancelled")
        assert http.post(f"/api/v1/runs/{run['run']}/cancel").status_code == 409
        again = http.post(f"/api/v1/runs/{run['run']}/rerun")
        assert again.status_code == 201
        states = {j["name"]: j["state"] for j in again.json()["jobs"]}
        assert states["start"] == "done" and states["a"] in ("ready", "running")
        http.post(f"/api/v1/runs/{again.json()['run']}/cancel")


def test_rerun_of_a_done_run_says_there_is_nothing_to_do_and_makes_no_run(
        daemon: Daemon, ccctl: Ccctl) -> None:
    with daemon.http() as http:
        upload(http, QUICK)
        run = run_to_end(http, "quick")
        before = len(http.get("/api/v1/runs").json())
        r = http.post(f"/api/v1/runs/{run['run']}/rerun")
        assert r.status_code == 409
        assert r.json()["error"] == f"run {run['run']} is done: nothing to run again (no run made)"
        assert len(http.get("/api/v1/runs").json()) == before
    proc = ccctl("rerun", run["run"])
    assert proc.returncode != 0 and "nothing to run again" in proc.stderr


def test_papers_calls_work_as_written(env: dict[str, str], state_dir: Path,
                                      tmp_path: Path) -> None:
    archive = tmp_path / "workflow-example.tar"
    archive.write_bytes(tar_of({p.name: p.read_bytes() for p in EXAMPLE.iterdir()}, gz=False))
    with running_daemon(env, state_dir, "--archive-dir", str(tmp_path)) as daemon:
        papers_calls(daemon, archive)


def papers_calls(daemon: Daemon, archive: Path) -> None:
    auth = {"Authorization": f"Bearer {daemon.token}", "accept": "application/json"}
    # Figure 16: curl -X POST 'http://127.0.0.1:8000/workflow?archive=workflow-example.tar' -d ''
    r = httpx.post(f"{daemon.url}/workflow", params={"archive": str(archive)}, content=b"",
                   headers=auth)
    assert r.status_code == 201 and r.json()["name"] == "workflow-example"
    # section 6.3: curl -X GET 'http://127.0.0.1:8000/workflows'
    assert [w["name"] for w in httpx.get(f"{daemon.url}/workflows", headers=auth).json()] == \
        ["workflow-example"]
    # Figure 19: the run call
    run = httpx.get(f"{daemon.url}/workflow/run/workflow-example", headers=auth)
    assert run.status_code == 201
    with daemon.http() as http:
        wait_for(lambda: http.get(f"/api/v1/runs/{run.json()['run']}").json()["state"] == "done",
                 what="the example to finish")


def test_openapi_describes_every_route_and_docs_work_offline(daemon: Daemon) -> None:
    spec = httpx.get(f"{daemon.url}/openapi.json").json()
    paths = set(spec["paths"])
    assert {"/api/v1/workflows", "/api/v1/runs/{run}/events", "/workflow/run/{name}"} <= paths
    docs = httpx.get(f"{daemon.url}/docs/")
    assert docs.status_code == 200 and "swagger-ui" in docs.text.lower()
    assert "https://" not in docs.text  # no CDN: the lab may be offline


def test_the_global_stream_says_when_a_workflow_is_stored_or_deleted(daemon: Daemon) -> None:
    lines: list[str] = []

    def listen() -> None:
        with daemon.http() as h, h.stream("GET", "/api/v1/events") as response:
            for line in response.iter_lines():
                lines.append(line)
                if '"deleted"' in line:
                    return

    listener = threading.Thread(target=listen)
    listener.start()
    with daemon.http() as http:
        wait_for(lambda: http.get("/api/v1/health").json()["event_subscribers"] == 1,
                 what="the listener")
        upload(http, QUICK)
        http.delete("/api/v1/workflows/quick")
    listener.join(timeout=30)
    notices = [json.loads(line[5:]) for line in lines if line.startswith("data:")]
    assert notices == [{"workflow": "quick", "change": "stored"},
                       {"workflow": "quick", "change": "deleted"}]
    assert "event: workflow" in lines and not any(line.startswith("id:") for line in lines)


def test_no_tcp_serves_only_the_unix_socket(env: dict[str, str], state_dir: Path,
                                            tmp_path: Path) -> None:
    import subprocess
    import sys

    sock = Path(env["XDG_RUNTIME_DIR"]) / "elsewhere" / "my.sock"
    proc = subprocess.Popen([sys.executable, "-m", "ccd", "--no-tcp", "--socket", str(sock),
                             "--state-dir", str(state_dir)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == f"ccd unix:{sock}  (no TCP port: the web page needs one)\n"
        ping = subprocess.run([sys.executable, "-m", "ccctl", "ping"], capture_output=True,
                              text=True, env={**env, "CCD_SOCKET": str(sock)}, timeout=30)
        assert ping.stdout.startswith(f"ccd is running at unix:{sock}")
        listening = Path("/proc/net/tcp").read_text()
        assert not any(
            line.split()[9] in _socket_inodes(proc.pid) for line in listening.splitlines()[1:])
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def _socket_inodes(pid: int) -> set[str]:
    """The inodes of a process's sockets, to find its TCP listeners in /proc/net/tcp."""
    out = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd)
        if target.startswith("socket:["):
            out.add(target[8:-1])
    return out


def test_workflows_carry_their_run_count_and_runs_can_be_limited(daemon: Daemon) -> None:
    with daemon.http() as http:
        upload(http, QUICK)
        upload(http, QUICK, name="other")
        first = run_to_end(http, "quick")["run"]
        second = run_to_end(http, "quick")["run"]
        listed = {w["name"]: w for w in http.get("/api/v1/workflows").json()}
        assert listed["quick"]["runs"] == 2 and listed["quick"]["last_run"]["run"] == second
        assert listed["other"]["runs"] == 0 and listed["other"]["last_run"] is None
        assert [r["run"] for r in http.get("/api/v1/runs").json()] == [second, first]
        newest = http.get("/api/v1/runs", params={"limit": 1}).json()
        assert [r["run"] for r in newest] == [second] and newest[0]["counts"] == {"done": 4}


def test_a_runs_event_stream_ends_with_the_run(daemon: Daemon) -> None:
    with daemon.http() as http:
        upload(http, QUICK)
        run = run_to_end(http, "quick")["run"]
        with http.stream("GET", f"/api/v1/runs/{run}/events") as response:
            lines = list(response.iter_lines())  # the server closes it: the run is over
        ids = [line.split(": ")[1] for line in lines if line.startswith("id: ")]
        last = json.loads([line for line in lines if line.startswith("data: ")][-1][6:])
        assert last["job"] is None and last["state"] == "done" and last["id"] == int(ids[-1])
        again = http.get(f"/api/v1/runs/{run}/events", headers={"Last-Event-ID": ids[-1]})
        assert again.status_code == 204  # nothing more will come: a browser stops retrying
        tail = http.get(f"/api/v1/runs/{run}/events", headers={"Last-Event-ID": ids[-2]})
        assert tail.status_code == 200 and f"id: {ids[-1]}" in tail.text


def test_a_hosts_max_jobs_holds_across_runs(daemon: Daemon, tmp_path: Path) -> None:
    trace = tmp_path / "trace"  # each job appends "+" when it starts and "-" before it ends
    job = f"echo + >> {trace}; sleep 0.2; echo - >> {trace}"
    nodes = "\n".join(f"    j{i}: {{exec: '{job}', host: box}}" for i in range(6))
    text = f"workflow:\n  nodes:\n{nodes}\n  dependencies: []\nhosts:\n  box: {{max_jobs: 2}}\n"
    with daemon.http() as http:
        assert upload(http, text, name="six").status_code == 201
        ids = [http.post("/api/v1/runs", json={"workflow": "six"}).json()["run"]
               for _ in range(2)]
        wait_for(lambda: all(http.get(f"/api/v1/runs/{i}").json()["state"] == "done"
                             for i in ids), what="both runs to end")
        health = http.get("/api/v1/health").json()
    running, most = 0, 0
    for mark in trace.read_text().split():
        running += 1 if mark == "+" else -1
        most = max(most, running)
    assert most == 2 and running == 0  # 12 jobs, never more than 2 at once on box
    assert list(health["hosts"]["executors"]) == ["local:box"]  # one executor for both runs


def test_a_sigterm_while_it_starts_stops_the_daemon(env: dict[str, str], state_dir: Path,
                                                     tmp_path: Path) -> None:
    # Uploading a big workflow at start takes a while; a SIGTERM then was swallowed and
    # the daemon went on to serve.
    big = tmp_path / "big.yaml"
    big.write_text("workflow:\n  nodes:\n" +
                   "".join(f"    j{i}: {{exec: 'true', label: '{{name}}'}}\n"
                           for i in range(40_000)))
    proc = subprocess.Popen([sys.executable, "-m", "ccd", "--state-dir", str(state_dir),
                             "--port", "0", "--upload", str(big)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with proc:
        try:
            wait_for(lambda: _catches(proc.pid, signal.SIGTERM), what="ccd to take SIGTERM")
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=60)
        finally:
            proc.kill()
    assert proc.returncode == 0, err


def _catches(pid: int, sig: int) -> bool:
    """Has the process its own handler for `sig` (SigCgt in /proc)?"""
    caught = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                  if line.startswith("SigCgt:"))
    return bool(int(caught.split()[1], 16) >> (sig - 1) & 1)


def test_a_sigterm_just_after_it_prints_its_address_stops_it(env: dict[str, str],
                                                              tmp_path: Path) -> None:
    # Between ccd's own handler and uvicorn's there was a gap where a SIGTERM was lost
    # (one start in five, sent as soon as the login line is out).
    for i in range(10):
        d = Daemon(env, tmp_path / f"state{i}").start()
        assert d.stop() == 0


@pytest.mark.parametrize(("method", "path", "body", "headers", "status"), [
    ("PUT", "/api/v1/workflows/quick/jobs/b", b'{"timeout": "abc"}', {}, 422),
    ("PUT", "/api/v1/workflows/quick/jobs/b", b'{"env": "xy"}', {}, 422),
    ("PUT", "/api/v1/workflows/quick/jobs/b", b'{"env": [1]}', {}, 422),
    ("PUT", "/api/v1/workflows/quick/jobs/b", b'{"nope": 1}', {}, 422),
    ("PUT", "/api/v1/workflows/quick/jobs/b", b'{"script": "' + b"a" * 300 + b'"}', {}, 422),
    ("PUT", "/api/v1/workflows/quick/jobs/b", b'{"venv": "' + b"a" * 300 + b'"}', {}, 422),
    ("GET", "/api/v1/runs?limit=99999999999999999999", b"", {}, 422),
    ("GET", "/api/v1/events?after=99999999999999999999", b"", {}, 422),
    ("GET", "/api/v1/events", b"", {"Last-Event-ID": "99999999999999999999"}, 422),
    ("POST", "/api/v1/runs", b'{"workflow": 42}', {}, 422),
    ("POST", "/api/v1/runs", b"{not json", {}, 400),
])
def test_client_input_of_the_wrong_shape_is_a_4xx_that_says_why(
        daemon: Daemon, method: str, path: str, body: bytes, headers: dict[str, str],
        status: int) -> None:
    with daemon.http() as http:
        upload(http, QUICK)
        r = http.request(method, path, content=body, headers=headers)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json" and r.json()["error"]
