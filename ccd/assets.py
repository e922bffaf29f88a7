"""Files that ship with ccd but live outside its Python code: `web/`, `systemd/`, `examples/`.

In a source checkout they sit at the top of the repository; in a wheel they are packaged
as `ccd/web`, `ccd/systemd` and `ccd/examples` (see pyproject.toml), so git holds one copy.
"""

from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).resolve().parent


def asset_dir(name: str) -> Path:
    """The directory `web`, `systemd` or `examples`, wherever this installation keeps it."""
    for candidate in (_HERE / name, _HERE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"ccd is installed without its {name}/ directory")
