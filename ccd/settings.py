"""Where ccd keeps things on this machine (XDG base directories), the user's variables, and
the settings file."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ccd.errors import Problem
    from ccd.model import NotifySpec

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def version() -> str:
    """The installed ccd's version (ccd and ccctl are one package)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("ccd")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def default_max_jobs() -> int:
    """Jobs at once when the user sets no limit: CPU count x 4."""
    return (os.cpu_count() or 1) * 4


def state_dir() -> Path:
    """`$CCD_STATE_DIR`, else `$XDG_STATE_HOME/ccd`, else `~/.local/state/ccd`."""
    if os.environ.get("CCD_STATE_DIR"):
        return Path(os.environ["CCD_STATE_DIR"]).expanduser().absolute()
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base).expanduser().absolute() / "ccd"


def runtime_dir() -> Path:
    """`$XDG_RUNTIME_DIR/ccd`, else `/tmp/ccd-<uid>`."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    return Path(base) / "ccd" if base else Path(f"/tmp/ccd-{os.getuid()}")


def default_socket() -> Path:
    return runtime_dir() / "ccd.sock"


def config_dir() -> Path:
    """`$XDG_CONFIG_HOME/ccd`, else `~/.config/ccd`."""
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base).expanduser().absolute() / "ccd"


def token_path() -> Path:
    """Where the daemon's token is kept (0600)."""
    return config_dir() / "token"


def variables() -> dict[str, str]:
    """The `cm.NAME` label variables: a flat `name: value` YAML file, `config_dir()/variables.yaml`.

    A missing or unreadable file means no variables; labels then show "" for them.
    """
    path = config_dir() / "variables.yaml"
    try:
        data = path.read_bytes()
    except OSError:
        return {}
    from ccd.errors import SpecError
    from ccd.yamltree import Mapping, Scalar, load

    try:
        root = load(data, str(path))
    except SpecError:
        return {}
    if not isinstance(root, Mapping):
        return {}
    pairs = root.pairs
    return {k.text: v.text for k, v in pairs if isinstance(k, Scalar) and isinstance(v, Scalar)}


def settings_path() -> Path:
    """`config_dir()/settings.yaml`: what holds for every run this user's ccd drives."""
    return config_dir() / "settings.yaml"


def notifiers() -> tuple[tuple[NotifySpec, ...], list[Problem]]:
    """The `notify:` entries of the settings file, which apply to every run the daemon or
    `ccctl run` drives besides the workflow's own, and the file's warnings; none without
    the file. Raises SpecError (file:line:col) for a bad one."""
    from ccd.errors import Problem, SpecError
    from ccd.spec import parse_settings

    path = settings_path()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return (), []
    except OSError as e:
        raise SpecError([Problem(str(path), 1, 1, f"cannot read: {e.strerror}")]) from None
    return parse_settings(data, str(path))


def duration(text: str) -> float:
    """Seconds in `30d`, `12h`, `90m`, `45s`, `2w` (a bare number is seconds). ValueError
    with a message for anything else."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text)
    if m is None:
        raise ValueError(f"{text!r} is not a duration like 30d, 12h, 90m or 45s")
    return float(m.group(1)) * _UNITS[m.group(2) or "s"]
