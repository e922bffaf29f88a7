"""The API keeps its contract: schemathesis generates requests for every operation of
/openapi.json (valid and invalid ones) against a real daemon and checks each answer: no
server error, a documented status code and content type, a body that fits the documented
schema (server-sent events included, event by event), documented headers."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from conftest import ROOT, Daemon

CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_schema_conformance,response_headers_conformance")


def schemathesis(daemon: Daemon, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "schemathesis"), "run", f"{daemon.url}/openapi.json",
         "--header", f"Authorization: Bearer {daemon.token}", "--checks", CHECKS,
         "--generation-deterministic", *options],
        capture_output=True, text=True, timeout=600, env=daemon.env)


def test_every_operation_answers_as_documented(daemon: Daemon) -> None:
    with daemon.http() as http:
        from ccd.uploads import pack

        data, filename = pack(ROOT / "examples" / "workflow-example")
        assert http.post("/api/v1/workflows", content=data,
                         params={"filename": filename}).status_code == 201
        run = http.post("/api/v1/runs", json={"workflow": "workflow-example"}).json()["run"]
    # The global event stream never ends: a few cases, each read for a second.
    # Not the token's rotation: every later request would get a 401.
    for options in (["--exclude-path-regex", "^/api/v1/(events|token/rotate)$",
                     "--max-examples", "15",
                     "--request-timeout", "5"],
                    ["--include-path-regex", "^/api/v1/events$", "--phases", "coverage,fuzzing",
                     "--max-examples", "2",
                     "--request-timeout", "1"]):
        proc = schemathesis(daemon, *options)
        assert proc.returncode == 0, proc.stdout[-6000:]
        selected = re.search(r"Selected: (\d+)/", proc.stdout)
        tested = re.search(r"Tested: (\d+)", proc.stdout)
        assert selected and tested and selected[1] == tested[1], proc.stdout[-3000:]
    assert run
