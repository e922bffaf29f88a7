"""Hostile workflow files get one clean FILE:LINE:COL error, quickly, in bounded memory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

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
    assert lines[0].startswith(f"{path}{expected}")
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
