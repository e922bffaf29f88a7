"""The systemd user unit: it verifies, and ccd tells systemd READY=1 once it serves."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
from conftest import Ccctl, require


def installed(program: str) -> str:
    path = shutil.which(program)
    if path is None:
        require(f"{program} is not installed")
    assert path is not None
    return path


def test_installed_unit_passes_systemd_analyze_verify(ccctl: Ccctl, env: dict[str, str],
                                                      tmp_path: Path) -> None:
    analyze = installed("systemd-analyze")
    proc = ccctl("service", "install")
    assert proc.returncode == 0, proc.stderr
    unit = Path(env["XDG_CONFIG_HOME"]) / "systemd" / "user" / "ccd.service"
    text = unit.read_text()
    assert "Type=notify" in text and f"ExecStart={Path(sys.executable).parent / 'ccd'}" in text
    verify = subprocess.run([analyze, "--user", "verify", str(unit)], capture_output=True,
                            text=True, env={**env, "XDG_RUNTIME_DIR": str(tmp_path)})
    assert verify.returncode == 0 and verify.stderr == "", verify.stderr


def test_ready_is_notified_when_the_api_answers_and_stopping_on_sigterm(
        env: dict[str, str], state_dir: Path, tmp_path: Path) -> None:
    address = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(address)
        notify.settimeout(30)
        proc = subprocess.Popen(
            [sys.executable, "-m", "ccd", "--state-dir", str(state_dir), "--port", "0"],
            env={**env, "NOTIFY_SOCKET": address}, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        try:
            assert notify.recv(256) == b"READY=1"
            sock = Path(env["XDG_RUNTIME_DIR"]) / "ccd" / "ccd.sock"
            transport = httpx.HTTPTransport(uds=str(sock))
            with httpx.Client(transport=transport, base_url="http://localhost") as http:
                assert http.get("/api/v1/health").status_code == 200
            proc.send_signal(signal.SIGTERM)
            assert notify.recv(256) == b"STOPPING=1"
            proc.communicate(timeout=30)
        finally:
            proc.kill()
    assert proc.returncode == 0
