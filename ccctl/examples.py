"""The example workflows that come with ccd, as `ccctl example` lists and copies them.

Git holds them once, in `examples/` at the top of a checkout (the tests and `make run` use
them there); a wheel carries the same files as `ccd/examples` (pyproject.toml), and
`ccd.assets.asset_dir` finds whichever this installation has. An example is a directory
holding a workflow of its own name (`NAME/NAME.yaml`) and the files its jobs use; its
description is the first phrase of that workflow's leading comment.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from ccd.assets import asset_dir

# Left behind by running an example's Python in place; never part of a copy.
_SKIPPED = ("__pycache__", ".")


@dataclass(frozen=True)
class Example:
    """One shipped example: its name, its directory, and what it is in one line."""

    name: str
    directory: Path
    description: str

    @property
    def workflow(self) -> str:
        """The file name of its workflow."""
        return f"{self.name}.yaml"

    def files(self) -> list[Path]:
        """Its files, relative to its directory, in a stable order."""
        files = (p.relative_to(self.directory) for p in self.directory.rglob("*") if p.is_file())
        return sorted(f for f in files if not any(part.startswith(_SKIPPED) for part in f.parts))


def examples() -> dict[str, Example]:
    """The shipped examples by name, sorted (raises FileNotFoundError if none shipped)."""
    found = {}
    for directory in sorted(asset_dir("examples").iterdir()):
        workflow = directory / f"{directory.name}.yaml"
        if workflow.is_file():
            found[directory.name] = Example(directory.name, directory, _description(workflow))
    return found


def copy(example: Example, target: Path) -> list[Path]:
    """Copy the example's files into `target` (made if missing); the files written.

    Raises FileExistsError naming the first file that is already there, before writing
    anything: a copy never overwrites someone's edits.
    """
    files = example.files()
    for relative in files:
        there = target / relative
        if there.exists() or there.is_symlink():
            raise FileExistsError(f"{there} exists")
    written = []
    for relative in files:
        there = target / relative
        there.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(example.directory / relative, there)
        written.append(there)
    return written


def _description(workflow: Path) -> str:
    """The leading comment's first phrase: up to its first colon or full stop."""
    comment = []
    for line in workflow.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        comment.append(line.lstrip("#").strip())
    return re.split(r"[:.](?:\s|$)", " ".join(comment), maxsplit=1)[0].strip()
