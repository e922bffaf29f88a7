"""Hostile workflow files get one clean FILE:LINE:COL error, quickly, in bounded memory; hostile
uploads to a daemon get a 4xx (or a 507 when its disk is full), leave nothing behind, and
never stall other clients."""

from __future__ import annotations

import contextlib
import gc
import gzip
import io
import os
import stat
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import Daemon, require, running_daemon

BOMB = b"""\
a: &a ["x","x","x","x","x","x","x","x","x"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
workflow: {nodes: *g, dependencies: *g}
"""

PEAK = """\
import sys
from ccd.errors import SpecError
from ccd.spec import load_spec
try:
    load_spec(sys.argv[1])
except SpecError:
    pass
print(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM")))
"""

CASES = {
    "empty": (b"", ":1:1: empty file"),
    "binary": (bytes(range(256)) * 64, ":2:118: not a UTF-8 text file"),
    "nul": (b"workflow:\n  nodes: \x00\n", ":2:10: not a text file (NUL byte)"),
    "huge": (b"# " + b"x" * (20 * 1024 * 1024), ":1:1: file is 20,971,522 bytes; the limit is"),
    "deep-flow": (b"[" * 200_000 + b"]" * 200_000, ":1:65: nested more than 64 levels deep"),
    "deep-block": (b"- " * 100_000 + b"x\n", ":1:129: nested more than 64 levels deep"),
    "alias-bomb": (BOMB, ":6:4: a dependency must be a chain like \"a,b,c\", not a list"),
    "control-char": (b"workflow: \x07\n", ":1:11: invalid YAML: control characters are not"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_file_gets_a_clean_error(tmp_path: Path, name: str) -> None:
    data, expected = CASES[name]
    path = tmp_path / f"{name}.yaml"
    path.write_bytes(data)
    proc = subprocess.run([sys.executable, "-m", "ccctl", "validate", str(path)],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert lines and all(line.startswith(f"{path}:") for line in lines)  # no traceback
    errors = [line for line in lines if ": warning: " not in line]
    assert errors[0].startswith(f"{path}{expected}")
    # Peak memory of reading it, from the kernel's own count for a fresh process (VmHWM;
    # rusage would include the forked copy of this big pytest process): 500 MB would mean
    # an alias was expanded.
    peak = subprocess.run([sys.executable, "-c", PEAK, str(path)], capture_output=True,
                          text=True, timeout=30, check=True)
    assert int(peak.stdout) < 150 * 1024  # KiB


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    """`ccctl validate` with a bound that only a blow-up reaches (the old code took minutes)."""
    return subprocess.run([sys.executable, "-m", "ccctl", "validate", str(path)],
                          capture_output=True, text=True, timeout=30)


def test_too_many_yaml_items_is_one_clean_error(tmp_path: Path) -> None:
    path = tmp_path / "many.yaml"
    path.write_text("workflow:\n  nodes:\n" +
                    "".join(f"    j{i}: {{exec: x}}\n" for i in range(80_000)))
    proc = validate(path)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"{path}:75001:20:") and "more than 300,000 YAML items" in \
        proc.stderr


def test_an_anchor_used_a_hundred_thousand_times_is_read_once(tmp_path: Path) -> None:
    names = [f"j{i}" for i in range(1000)]
    path = tmp_path / "aliases.yaml"
    path.write_text("workflow:\n  nodes:\n"
                    "    j0: &body {exec: 'true', env: &env {" +
                    ", ".join(f"V{i}: x" for i in range(1000)) + "}}\n" +
                    "".join(f"    {n}: *body\n" for n in names[1:]) +
                    f"  dependencies:\n    - &chain '{','.join(names)}'\n" +
                    "    - *chain\n" * 100_000)
    proc = validate(path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{path}: ok, 1000 jobs, 999 dependencies\n"


def test_every_unknown_name_is_reported_and_only_a_few_get_suggestions(tmp_path: Path) -> None:
    n = 20_000
    path = tmp_path / "unknown.yaml"
    path.write_text("workflow:\n  nodes:\n" +
                    "".join(f"    job{i}: {{exec: x}}\n" for i in range(n)) +
                    "  dependencies:\n" + "".join(f"    - job{i},jbo{i}\n" for i in range(n)))
    proc = validate(path)
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2 and len(lines) == n
    assert all("unknown node 'jbo" in line for line in lines)
    assert sum("did you mean" in line for line in lines) == 20


# -- hostile uploads to a daemon ----------------------------------------------------------

QUICK = b"workflow:\n  nodes: {a: {exec: 'true'}}\n  dependencies: []\n"


def peak_kib(pid: int) -> int:
    """The most memory a process has held at once (VmHWM), in KiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM")))


def leftovers(state_dir: Path) -> list[Path]:
    """What a refused upload may have left in the state directory."""
    return list((state_dir / "workflows").glob(".upload-*"))


def header_bomb(kind: bytes, size: int) -> bytes:
    """A gzip'd tar whose first member is a header member (a GNU long name, a pax header)
    announcing `size` bytes of zeros: concatenated gzip members of 1 MiB of zeros each."""
    info = tarfile.TarInfo("././@LongLink")
    info.type = kind
    info.size = size
    zeros = gzip.compress(bytes(1 << 20))
    return gzip.compress(info.tobuf(tarfile.USTAR_FORMAT)) + zeros * (size >> 20)


@pytest.mark.parametrize("kind", [tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK,
                                  tarfile.XHDTYPE, tarfile.XGLTYPE])
def test_a_huge_tar_header_member_is_refused_in_bounded_memory(daemon: Daemon, kind: bytes
                                                               ) -> None:
    assert daemon.proc is not None
    body = header_bomb(kind, 300 << 20)
    assert len(body) < 1 << 20  # 300 MiB of header in a body under 1 MiB
    with daemon.http() as http:
        r = http.post("/api/v1/workflows", content=body)
    assert peak_kib(daemon.proc.pid) < 200 * 1024
    assert 400 <= r.status_code < 500 and "'././@LongLink'" in r.json()["error"], r.text


def test_a_chunked_multipart_upload_is_cut_off_at_the_limit(daemon: Daemon,
                                                            state_dir: Path) -> None:
    assert daemon.proc is not None
    pid = daemon.proc.pid
    before = peak_kib(pid)
    spooled: list[tuple[str, int]] = []  # regular files the daemon holds outside its state

    def files() -> None:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target, info = os.readlink(fd), fd.stat()
                if stat.S_ISREG(info.st_mode) and not target.startswith(str(state_dir)):
                    spooled.append((target, info.st_size))

    def body() -> Iterator[bytes]:  # no Content-Length: sent chunked
        yield (b"--b0undary\r\nContent-Disposition: form-data; name=\"file\"; "
               b"filename=\"w.tar\"\r\nContent-Type: application/x-tar\r\n\r\n")
        for _ in range(40):
            yield bytes(1 << 20)
            files()
        yield b"\r\n--b0undary--\r\n"

    with daemon.http() as http:
        r = http.post("/api/v1/workflows", content=body(),
                      headers={"Content-Type": "multipart/form-data; boundary=b0undary"})
        assert r.status_code == 413, r.text
        assert http.get("/api/v1/workflows").json() == []
    assert spooled == []
    assert peak_kib(pid) - before < 40 * 1024  # the limit's 32 MiB, not the body's 40
    assert leftovers(state_dir) == []


def header_chain(n: int) -> bytes:
    """`n` empty GNU long-name header members in a row, then the end of the archive."""
    info = tarfile.TarInfo("././@LongLink")
    info.type = tarfile.GNUTYPE_LONGNAME
    return info.tobuf(tarfile.USTAR_FORMAT) * n + bytes(1024)


def tar_of(*members: tuple[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.GNU_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


REFUSED_ARCHIVES = {
    "long-name-part": (tar_of(("w.yaml", QUICK), ("x" * 300, b"echo")),
                       "a part of its path is over 255 bytes"),
    "long-path": (tar_of(("w.yaml", QUICK), ("d/" * 2100 + "f", b"echo")),
                  "its path is over 1,024 bytes"),
    "file-and-directory": (tar_of(("w.yaml", QUICK), ("x", b"a"), ("x/y", b"b")),
                           "archive member 'x' is both a file and a directory"),
    "dot-as-a-file": (tar_of(("w.yaml", QUICK), (".", b"oops")),
                      "archive member '.' is a file"),
    "dot-slash-as-a-file": (tar_of(("./", b"oops"), ("w.yaml", QUICK)),
                            "archive member './' is a file"),
    "header-chain": (gzip.compress(header_chain(2000)), "header members in a row"),
}


@pytest.mark.parametrize("case", list(REFUSED_ARCHIVES))
def test_a_refused_archive_is_a_4xx_that_leaves_nothing_behind(daemon: Daemon, state_dir: Path,
                                                               case: str) -> None:
    body, expected = REFUSED_ARCHIVES[case]
    with daemon.http() as http:
        r = http.post("/api/v1/workflows", content=body, params={"name": "w"})
        assert 400 <= r.status_code < 500 and expected in r.json()["error"], r.text
        assert http.get("/api/v1/workflows").json() == []
    assert leftovers(state_dir) == []


@pytest.fixture
def full_workflows(state_dir: Path) -> Iterator[Path]:
    """The state directory's workflows/ on a small tmpfs, filled up (needs root)."""
    where = state_dir / "workflows"
    where.mkdir(parents=True)
    if os.geteuid() != 0:
        require("these tests mount tmpfs and need root (CI runs as root)")
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(where)],
                           capture_output=True, text=True)
    if mount.returncode != 0:
        require(f"cannot mount a tmpfs here: {mount.stderr.strip()}")
    try:
        with open(where / "filler", "wb", buffering=0) as f, \
                contextlib.suppress(OSError):
            while True:
                f.write(bytes(4096))
        yield where
    finally:
        subprocess.run(["umount", "--lazy", str(where)], check=True)


def test_an_upload_to_a_full_state_directory_is_507_and_leaves_nothing(
        full_workflows: Path, daemon: Daemon, state_dir: Path) -> None:
    upload = tar_of(("w.yaml", QUICK), ("a.sh", b"echo a\n" * 1000))
    with daemon.http() as http:
        r = http.post("/api/v1/workflows", content=upload, params={"name": "w"})
        assert r.status_code == 507, r.text
        assert r.json()["error"].startswith("the state directory is full")
        assert sorted(p.name for p in full_workflows.iterdir()) == ["filler"]
        (full_workflows / "filler").unlink()  # room again: the same upload goes through
        assert http.post("/api/v1/workflows", content=upload,
                         params={"name": "w"}).status_code == 201


def big_workflow(jobs: int) -> bytes:
    """A valid workflow of `jobs` jobs in chains of 100, just under the 8 MiB file limit."""
    lines = ["workflow:", "  nodes:"]
    lines += [f"    job{i:06d}: {{exec: 'echo xxxxxxxx {i}', label: '{{name}} yyyyyyyyyy'}}"
              for i in range(jobs)]
    lines.append("  dependencies:")
    lines += ["    - " + ",".join(f"job{j:06d}" for j in range(i, min(i + 100, jobs)))
              for i in range(0, jobs, 100)]
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.parametrize(("jobs", "status"), [
    (100_000, 422),  # just under 8 MiB: refused at 300,000 YAML items
    (48_000, 201),  # the most jobs written this way that validate
])
def test_health_answers_while_a_big_upload_is_validated(daemon: Daemon, jobs: int,
                                                        status: int) -> None:
    body = big_workflow(jobs)
    assert len(body) < 8 << 20
    answer: list[httpx.Response] = []

    def send() -> None:
        with daemon.http() as h:
            answer.append(h.post("/api/v1/workflows", content=body,
                                 params={"filename": "big.yaml"}, timeout=120))

    sender = threading.Thread(target=send)
    latencies = []
    gc.disable()  # this process's own collections, over pytest's heap, are not the daemon's
    try:
        sender.start()
        with daemon.http() as http:
            while sender.is_alive():
                t = time.perf_counter()
                assert http.get("/api/v1/health").status_code == 200
                latencies.append(time.perf_counter() - t)
                time.sleep(0.02)
        sender.join()
    finally:
        gc.enable()
    assert answer[0].status_code == status, answer[0].text[:300]
    assert status != 201 or answer[0].json()["jobs"] == jobs
    assert len(latencies) > 10 and max(latencies) < 0.1, sorted(latencies)[-5:]


def test_archive_names_only_files_in_the_allowed_directories(daemon: Daemon) -> None:
    with daemon.http() as http:
        r = http.post("/workflow", params={"archive": "/etc/passwd"}, content=b"")
        assert r.status_code == 403
        assert "--archive-dir" in r.json()["error"] and "root:" not in r.text


def test_an_archives_content_is_never_quoted_back(env: dict[str, str], state_dir: Path,
                                                  tmp_path: Path) -> None:
    secret = "hunter2-is-my-password"
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "wf.yaml").write_text(f"workflow:\n  nodes: {{a: {{kind: {secret}}}}}\n")
    (allowed / "notes.txt").write_text(f"password: {secret}\n")
    (allowed / "link.yaml").symlink_to("/etc/passwd")
    with running_daemon(env, state_dir, "--archive-dir", str(allowed)) as d, d.http() as http:
        def post(name: str) -> httpx.Response:
            return http.post("/workflow", params={"archive": str(allowed / name)}, content=b"")

        invalid = post("wf.yaml")
        assert invalid.status_code == 422 and secret not in invalid.text
        assert invalid.json()["problems"][0].startswith("wf.yaml:2:")
        other = post("notes.txt")
        assert other.status_code == 415 and secret not in other.text
        assert post("link.yaml").status_code == 403  # the link leads out
        assert post("../outside.yaml").status_code == 403


def test_an_upload_a_killed_daemon_was_writing_is_removed_at_the_next_start(
        env: dict[str, str], state_dir: Path) -> None:
    old = state_dir / "workflows" / ".upload-dead"
    (old / "sub").mkdir(parents=True)
    (old / "sub" / "half.yaml").write_text("workflow:\n")
    young = state_dir / "workflows" / ".upload-young"  # perhaps another daemon's, now
    young.mkdir()
    past = time.time() - 3600
    os.utime(old, (past, past))
    with running_daemon(env, state_dir):
        assert not old.exists() and young.exists()


def test_the_largest_upload_allowed_stays_in_bounded_memory(daemon: Daemon) -> None:
    from ccd.uploads import MAX_UNPACKED

    assert daemon.proc is not None
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in (("wf.yaml", QUICK), ("data.bin", bytes(MAX_UNPACKED - 4096))):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with daemon.http() as http:
        r = http.post("/api/v1/workflows", content=buffer.getvalue(),
                      params={"filename": "wf.tar.gz"})
    assert r.status_code == 201, r.text
    assert peak_kib(daemon.proc.pid) < 200 * 1024
