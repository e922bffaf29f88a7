"""What ccctl prints with. On a terminal: rich consoles, as wide as the terminal, styled.
Otherwise (a file, a pipe, a script's capture): plain lines, unbounded, so a path or a
message stays on one line for grep and scripts, written without importing rich at all
(rich's console is ~30 ms of every `ccctl run` a script starts).

rich otherwise wraps at $COLUMNS or 80 columns even when nothing will ever display it.
"""

from __future__ import annotations

import functools
import os
import sys
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

UNBOUNDED = 1_000_000  # columns: no line of ours is longer
Part = str | tuple[str, str]  # text, or (text, rich style)


def console(stderr: bool = False) -> Console:
    """A Console on stdout (or stderr) that wraps only on a terminal."""
    from rich.console import Console

    out = Console(stderr=stderr, highlight=False)
    if not out.is_terminal:
        out.width = UNBOUNDED
    return out


def is_terminal(file: IO[str]) -> bool:
    """Would rich take `file` for a terminal? Its rules: TTY_COMPATIBLE=1 or 0 says so,
    then a non-empty FORCE_COLOR says yes, then the file's isatty()."""
    forced = os.environ.get("TTY_COMPATIBLE", "")
    if forced in ("0", "1"):
        return forced == "1"
    if (color := os.environ.get("FORCE_COLOR")) is not None:
        return color != ""
    try:
        return file.isatty()
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


class Printer:
    """Lines for a person on stdout or stderr, made of parts, each plain text or text with a
    rich style: styled through rich on a terminal, the bare text otherwise. The parts are
    never parsed as markup, so a job's message is shown as written."""

    def __init__(self, stderr: bool = False) -> None:
        self.stderr = stderr
        self.file = sys.stderr if stderr else sys.stdout
        self.is_terminal = is_terminal(self.file)

    @functools.cached_property
    def rich(self) -> Console:
        """The rich console on the same stream, for tables (made when first asked for)."""
        return console(self.stderr)

    def say(self, *parts: Part) -> None:
        if not self.is_terminal:
            self.file.write("".join(p if isinstance(p, str) else p[0] for p in parts) + "\n")
            self.file.flush()
            return
        from rich.text import Text

        self.rich.print(Text.assemble(*parts))
