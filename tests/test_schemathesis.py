"""No client input may produce a server error: schemathesis fuzzes every operation of
/openapi.json against a real daemon (the event streams never end, so they are left out;
their handler is exercised in test_daemon.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import ROOT, Daemon


def test_fuzzing_the_api_finds_no_server_error(daemon: Daemon) -> None:
    with daemon.http() as http:
        from ccd.uploads import pack

        data, filename = pack(ROOT / "examples" / "workflow-example")
        assert http.post("/api/v1/workflows", content=data,
                         params={"filename": filename}).status_code == 201
    schemathesis = Path(sys.executable).parent / "schemathesis"
    proc = subprocess.run(
        [str(schemathesis), "run", f"{daemon.url}/openapi.json",
         "--header", f"Authorization: Bearer {daemon.token}",
         "--checks", "not_a_server_error", "--exclude-path-regex", "events",
         "--max-examples", "15", "--generation-deterministic", "--request-timeout", "20"],
        capture_output=True, text=True, timeout=600, env=daemon.env)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout.split("SUMMARY")[-1]
