"""Notifications when a run ends: `notify:` entries validated at their line, delivered by
`ccctl run` and by the daemon to a real HTTP receiver on 127.0.0.1 and to real commands,
once per run end; a notifier that fails or hangs never changes the run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import Ccctl, Daemon, jobs_of, wait_for, write
from prometheus_client.parser import text_string_to_metric_families

from ccd import export, notify
from ccd.errors import SpecError
from ccd.spec import load_spec, parse_settings


class Receiver:
    """An HTTP server on 127.0.0.1 that keeps every POST; with `hang`, it holds each
    request unanswered until the test ends."""

    def __init__(self, hang: bool = False) -> None:
        self.posts: list[tuple[str, dict[str, str], bytes]] = []
        self.release = threading.Event()
        received = self.posts
        release = self.release

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((self.path, dict(self.headers), body))
                if hang:
                    release.wait(60)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def bodies(self) -> list[dict[str, object]]:
        return [json.loads(body) for _, _, body in self.posts]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def hanging() -> Iterator[Receiver]:
    r = Receiver(hang=True)
    yield r
    r.close()


def _workflow(path: Path, notify_yaml: str, job: str = "exit 0") -> Path:
    """A workflow of one job `job` whose `notify:` is `notify_yaml` (a list, dedented)."""
    head = f"workflow:\n  nodes:\n    a: {{exec: {json.dumps(job)}}}\n  dependencies: []\n"
    return write(path, head + "notify:\n" + textwrap.indent(textwrap.dedent(notify_yaml), "  "))


# -- the notify: section --------------------------------------------------------------------

@pytest.mark.parametrize(("entry", "where", "said"), [
    ("  - webhook: ftp://example.org/x\n", "6:14", "http:// or https://"),
    ("  - webhook: http://127.0.0.1:99999/\n", "6:14", "port"),
    ("  - command: echo {nope}\n", "6:19", "unknown placeholder '{nope}'"),
    ("  - command: [echo, 'a {run']\n", "6:24", "a lone '{'"),
    ("  - command: echo 'unclosed\n", "6:14", "No closing quotation"),
    ("  - on: [failed]\n", "6:5", "needs one of command:, desktop:, webhook:, apprise:"),
    ("  - {desktop: true, command: x}\n", "6:21", "not both desktop: and command:"),
    ("  - desktop: yes\n", "6:14", "true or false"),
    ("  - desktop: true\n    on: [finished]\n", "7:10", "'finished' is not an end of a run"),
    ("  - desktop: true\n    timeout: 0\n", "7:14", "timeout (seconds) must be a number"),
    ("  - notify-send\n", "6:5", "must be a mapping"),
    ("  - apprise: nothing-here\n", "6:14", "apprise needs a service's URL"),
])
def test_a_bad_notify_entry_is_an_error_at_its_line(tmp_path: Path, entry: str, where: str,
                                                    said: str) -> None:
    path = _workflow(tmp_path / "w.yaml", entry)
    with pytest.raises(SpecError) as e:
        load_spec(path)
    assert [f"{p.line}:{p.col}" for p in e.value.problems if said in p.message] == [where]
    assert f"{path}:{where}: " in str(e.value)


def test_notify_must_be_a_list(tmp_path: Path) -> None:
    path = write(tmp_path / "w.yaml", """\
        workflow: {nodes: {a: {exec: 'true'}}}
        notify: {webhook: 'http://127.0.0.1:9/'}
        """)
    with pytest.raises(SpecError, match=r"w.yaml:2:9: notify must be a list"):
        load_spec(path)


def test_notify_entries_read_and_written_back(tmp_path: Path) -> None:
    path = _workflow(tmp_path / "w.yaml", """\
          - webhook: http://127.0.0.1:9/hook?x=1
            on: failed
          - command: ./tell.sh {run} "{state} {{literal}}"
            timeout: 2.5
          - desktop: true
            on: [failed, cancelled]
          - desktop: false
        """)
    spec, warnings = load_spec(path)
    assert [w for w in warnings if "notify-send" not in w.message] == []
    assert [(n.kind, n.target, [s.value for s in n.on], n.timeout) for n in spec.notify] == [
        ("webhook", ("http://127.0.0.1:9/hook?x=1",), ["failed"], 10.0),
        ("command", ("./tell.sh", "{run}", "{state} {{literal}}"), ["done", "failed",
                                                                    "cancelled"], 2.5),
        ("desktop", (), ["failed", "cancelled"], 10.0),
    ]
    again = write(tmp_path / "again.yaml", export.with_state(spec))
    assert load_spec(again)[0].notify == spec.notify


def test_a_placeholder_in_a_shell_script_is_warned_about(tmp_path: Path) -> None:
    path = _workflow(tmp_path / "w.yaml", "  - command: [sh, -c, 'echo {message}']\n")
    _, warnings = load_spec(path)
    assert [str(w) for w in warnings] == [
        f"{path}:6:14: warning: a placeholder in a script for sh would be read as shell code: "
        "read the values from the environment there ($CCD_RUN, $CCD_STATE, ...)"]


def test_the_settings_file_is_read_as_a_workflow_section() -> None:
    found, warnings = parse_settings(b"notify:\n  - command: tell\ncolour: red\n", "s.yaml")
    assert [(n.kind, n.target) for n in found] == [("command", ("tell",))]
    assert [str(w) for w in warnings] == ["s.yaml:3:1: warning: unknown setting 'colour' is "
                                          "ignored"]
    with pytest.raises(SpecError, match=r"s.yaml:2:14: webhook: the URL must start"):
        parse_settings(b"notify:\n  - webhook: mailto:me\n", "s.yaml")


def test_placeholders_are_filled_in_each_argument() -> None:
    values = {"run": "r-1", "state": "failed; rm -rf ~"}
    assert notify.fill("{run} is {state} {{not}}", values) == "r-1 is failed; rm -rf ~ {not}"


# -- ccctl run ------------------------------------------------------------------------------

def test_ccctl_run_posts_once_and_runs_the_command_once_per_run_end(
        tmp_path: Path, ccctl: Ccctl, receiver: Receiver) -> None:
    told = tmp_path / "told.txt"
    write(tmp_path / "tell.sh", f"""\
        #!/bin/sh
        printf '%s|%s|%s|%s\\n' "$1" "$2" "$CCD_STATE" "$CCD_FAILED" >> {told}
        """, mode=0o755)
    wf = _workflow(tmp_path / "w.yaml", f"""\
          - webhook: {receiver.url}/hook
          - command: ./tell.sh {{run}} "{{state}} of {{workflow}}"
          - webhook: {receiver.url}/only-done
            on: done
        """, job="exit 3")
    proc = ccctl("run", wf, "--json")
    assert proc.returncode == 1, proc.stderr
    run = jobs_of(proc)[""]
    assert [path for path, _, _ in receiver.posts] == ["/hook"]
    body = receiver.bodies()[0]
    assert (body["run"], body["workflow"], body["state"], body["counts"]) == \
        (run["run"], "w", "failed", {"failed": 1})
    assert receiver.posts[0][1]["Content-Type"] == "application/json"
    assert told.read_text() == f"{run['run']}|failed of w|failed|1\n"


def test_the_settings_notifiers_apply_to_every_run(tmp_path: Path, ccctl: Ccctl,
                                                   receiver: Receiver) -> None:
    write(Path(ccctl.env["XDG_CONFIG_HOME"]) / "ccd" / "settings.yaml", f"""\
        notify:
          - webhook: {receiver.url}/settings
        """)
    wf = write(tmp_path / "w.yaml", "workflow: {nodes: {a: {exec: 'true'}}}\n")
    proc = ccctl("run", wf, "--json")
    assert proc.returncode == 0, proc.stderr
    assert [(path, json.loads(body)["state"]) for path, _, body in receiver.posts] == \
        [("/settings", "done")]


def test_a_bad_settings_file_stops_ccctl_run_at_its_line(tmp_path: Path, ccctl: Ccctl) -> None:
    settings = write(Path(ccctl.env["XDG_CONFIG_HOME"]) / "ccd" / "settings.yaml",
                     "notify:\n  - webhok: http://127.0.0.1:9/\n")
    wf = write(tmp_path / "w.yaml", "workflow: {nodes: {a: {exec: 'true'}}}\n")
    proc = ccctl("run", wf)
    assert proc.returncode == 2
    assert f"{settings}:2:5: a notify entry needs one of" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (Path(ccctl.env["CCD_STATE_DIR"]) / "runs").exists()


def test_failing_and_hanging_notifiers_change_nothing_in_the_run(
        tmp_path: Path, ccctl: Ccctl, hanging: Receiver) -> None:
    pid_file = tmp_path / "hung.pid"
    wf = _workflow(tmp_path / "w.yaml", f"""\
          - command: [sh, -c, 'exit 3']
          - command: [sh, -c, 'echo $$ > {pid_file}; exec sleep 600']
            timeout: 1
          - webhook: {hanging.url}/never-answers
            timeout: 1
          - command: ./not-there.sh
          - webhook: http://127.0.0.1:9/nobody-listens
        """)
    proc = ccctl("run", wf, "--json")
    assert proc.returncode == 0, proc.stderr
    run = jobs_of(proc)
    assert (run[""]["state"], run["a"]["state"]) == ("done", "done")
    # The run's end was recorded before any notifier started, not after they gave up.
    assert run[""]["t1"] <= pid_file.stat().st_mtime
    assert [path for path, _, _ in hanging.posts] == ["/never-answers"]
    for said in ("command sh failed: exit 3", "command sh did not finish in 1 s; given up",
                 f"webhook http://127.0.0.1:{hanging.url.rsplit(':', 1)[1]} did not finish "
                 "in 1 s", "cannot run ./not-there.sh", "webhook http://127.0.0.1:9 failed"):
        assert said in proc.stderr
    hung = int(pid_file.read_text())
    wait_for(lambda: not _alive(hung), what="the hung command to be killed")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_a_desktop_notification_goes_through_notify_send(tmp_path: Path, ccctl: Ccctl) -> None:
    # A stand-in notify-send that writes its arguments down (a real one needs a desktop
    # session's D-Bus, which a test machine does not have).
    said = tmp_path / "said.json"
    bin_dir = tmp_path / "bin"
    write(bin_dir / "notify-send", f"""\
        #!/usr/bin/env python3
        import json, sys
        json.dump(sys.argv[1:], open({str(said)!r}, "w"))
        """, mode=0o755)
    wf = _workflow(tmp_path / "w.yaml", "  - desktop: true\n", job="exit 1")
    env = {**ccctl.env, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    proc = Ccctl(env)("run", wf, "--json")
    assert proc.returncode == 1, proc.stderr
    run_id = jobs_of(proc)[""]["run"]
    assert json.loads(said.read_text()) == [
        "--app-name=ccd", "--urgency=critical", "ccd: w failed",
        f"run {run_id} failed after 0s: 0 of 1 jobs done; 1 job failed: a: exit code 1"]


def test_apprise_delivers_to_a_local_json_endpoint(tmp_path: Path, ccctl: Ccctl,
                                                   receiver: Receiver) -> None:
    # apprise's json:// service POSTs the message as JSON: a real apprise, a local receiver.
    port = receiver.url.rsplit(":", 1)[1]
    wf = _workflow(tmp_path / "w.yaml", f"  - apprise: json://127.0.0.1:{port}/apprise\n"
                                        "    timeout: 60\n")
    proc = ccctl("run", wf, "--json")
    assert proc.returncode == 0, proc.stderr
    run_id = jobs_of(proc)[""]["run"]
    assert [path for path, _, _ in receiver.posts] == ["/apprise"]
    body = receiver.bodies()[0]
    assert (body["title"], body["type"]) == ("ccd: w done", "success")
    assert str(body["message"]).startswith(f"run {run_id} done after ")


def test_the_python_api_notifies_too(tmp_path: Path, receiver: Receiver,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from ccd import Workflow

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    wf = _workflow(tmp_path / "w.yaml", f"  - webhook: {receiver.url}/python\n")
    w = Workflow(filename=wf, state_dir=tmp_path / "state")
    assert w.run_parallel().value == "done"
    assert [(b["run"], b["state"]) for b in receiver.bodies()] == [(w.run_id, "done")]


# -- the daemon -----------------------------------------------------------------------------

def test_the_daemon_posts_once_per_run_end_and_runs_the_command(
        tmp_path: Path, daemon: Daemon, receiver: Receiver) -> None:
    told = tmp_path / "told.txt"
    wf = _workflow(tmp_path / "w.yaml", f"""\
          - webhook: {receiver.url}/daemon
          - command: [sh, -c, 'echo "$CCD_RUN $CCD_STATE" >> {told}']
        """)
    first = daemon.submit(wf)
    assert daemon.ended(first)[""]["state"] == "done"
    wait_for(lambda: len(receiver.posts) == 1 and told.exists(), what="the notifications")
    second = daemon.submit(wf)
    assert daemon.ended(second)[""]["state"] == "done"
    wait_for(lambda: len(receiver.posts) == 2, what="the second notification")

    def told_in_metrics() -> dict[tuple[str, str], float]:
        with daemon.http() as http:
            text = http.get("/metrics").text
        return {(s.labels["kind"], s.labels["outcome"]): s.value
                for family in text_string_to_metric_families(text)
                if family.name == "ccd_notifications" for s in family.samples}

    wait_for(lambda: told_in_metrics() == {("webhook", "sent"): 2, ("command", "sent"): 2},
             what="the notifications in /metrics")
    assert daemon.stop() == 0  # a stop waits for notifications still under way
    assert [(b["run"], b["state"]) for b in receiver.bodies()] == \
        [(first, "done"), (second, "done")]
    assert told.read_text().splitlines() == [f"{first} done", f"{second} done"]


def test_a_bad_settings_file_stops_the_daemons_start_at_its_line(
        env: dict[str, str], state_dir: Path) -> None:
    settings = write(Path(env["XDG_CONFIG_HOME"]) / "ccd" / "settings.yaml",
                     "notify:\n  - webhook: http://127.0.0.1:9/\n    on: [finished]\n")
    proc = subprocess.run([sys.executable, "-m", "ccd", "--state-dir", str(state_dir),
                           "--port", "0"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[-1] == (
        f"ccd: {settings}:3:10: on: 'finished' is not an end of a run; the ends are done, "
        "failed, cancelled")


def test_a_hanging_webhook_does_not_hold_the_daemon(tmp_path: Path, daemon: Daemon,
                                                     hanging: Receiver) -> None:
    wf = _workflow(tmp_path / "w.yaml", f"  - webhook: {hanging.url}/hang\n    timeout: 600\n")
    first = daemon.submit(wf)
    assert daemon.ended(first)[""]["state"] == "done"
    wait_for(lambda: len(hanging.posts) == 1, what="the webhook to be called")
    # While it hangs, the daemon answers and drives another run to its end.
    second = daemon.submit(wf)
    assert daemon.ended(second)[""]["state"] == "done"
    with daemon.http() as http:
        assert http.get("/api/v1/health").status_code == 200
    assert daemon.stop() == 0  # after a grace period for the notifications under way
    assert len(hanging.posts) == 2
    given_up = [json.loads(line)["message"] for line in daemon.log if "given up" in line]
    assert sorted(given_up) == sorted(
        f"run {run}: webhook http://127.0.0.1:{hanging.url.rsplit(':', 1)[1]} was not done "
        "when ccd stopped; given up" for run in (first, second))
