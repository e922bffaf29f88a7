"""The rich consoles ccctl prints with: as wide as the terminal, or, when the output is a
file or a pipe, unbounded, so a path or a message stays on one line for grep and scripts.

rich otherwise wraps at $COLUMNS or 80 columns even when nothing will ever display it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

UNBOUNDED = 1_000_000  # columns: no line of ours is longer


def console(stderr: bool = False) -> Console:
    """A Console on stdout (or stderr) that wraps only on a terminal."""
    from rich.console import Console

    out = Console(stderr=stderr, highlight=False)
    if not out.is_terminal:
        out.width = UNBOUNDED
    return out
