"""Progress lines in the paper's format, and the helper jobs call."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ccd.progress import LogFollower, highest_progress, published


@pytest.mark.parametrize(("line", "value"), [
    (b"# cloudmesh status=running progress=40 pid=123\n", 40),
    (b"# cloudmesh status=done pid=3 progress=55 host=x\n", 55),
    (b"# progress=100\n", 100),
    (b"#progress=7\n", 7),
    (b"echo # progress=5\n", None),  # not at the start of a line
    (b"# progress=101\n", None),
])
def test_progress_lines_are_read_in_the_papers_format(line: bytes, value: int | None) -> None:
    assert highest_progress(line) == value


def test_follower_reads_across_chunks_and_never_goes_backwards() -> None:
    f = LogFollower()
    assert not f.feed(b"hello\n# cloudmesh status=running progr")
    assert f.feed(b"ess=30 pid=1\n")
    assert f.progress == 30
    assert not f.feed(b"# progress=10\n")
    assert f.progress == 30 and f.offset == len(b"hello\n# cloudmesh status=running progr"
                                                b"ess=30 pid=1\n# progress=10\n")


def test_helper_writes_the_papers_line(tmp_path: Path) -> None:
    code = ("from ccd.progress import progress; progress(40); progress(100, filename='p.log')")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, check=True).stdout
    assert out.startswith("# cloudmesh status=running progress=40 pid=")
    assert (tmp_path / "p.log").read_text().startswith("# cloudmesh status=done progress=100 pid=")


def test_published_values_are_read_from_ccd_lines_and_the_last_one_wins() -> None:
    log = b"# ccd loss=0.5 best=no\nnoise # ccd x=1\n# ccd loss=0.31\n#ccd  n=3 \n"
    assert published(log) == {"loss": "0.31", "best": "no", "n": "3"}


def test_helper_takes_cloudmeshs_keywords_as_the_paper_prints_them(tmp_path: Path) -> None:
    code = ("from ccd.progress import progress; filename = 'py_script.log'\n"
            "progress(progress=1, filename=filename)\nprogress(progress=100, filename=filename)")
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True)
    lines = (tmp_path / "py_script.log").read_text().splitlines()
    assert lines[0].startswith("# cloudmesh status=running progress=1 pid=")
    assert lines[1].startswith("# cloudmesh status=done progress=100 pid=")
    assert highest_progress((tmp_path / "py_script.log").read_bytes()) == 100


def test_helper_wants_the_percentage_exactly_once() -> None:
    from ccd.progress import progress
    with pytest.raises(TypeError, match="once"):
        progress()
    with pytest.raises(TypeError, match="once"):
        progress(40, progress=40)
