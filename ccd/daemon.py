"""The ccd daemon. Not built yet: this version runs workflows in the foreground only."""

from __future__ import annotations

import sys


def main() -> None:
    """Console-script entry point."""
    sys.stderr.write("ccd: the daemon is not part of this version yet; run a workflow in the "
                     "foreground with `ccctl run FILE`\n")
    raise SystemExit(2)
