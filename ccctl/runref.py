"""RUN arguments: a run id, any unique prefix of one, or `@last` (the newest run).

Resolved against the daemon (`GET /api/v1/runs?prefix=`, the matching runs only, not the
whole list) or against a state directory's store, both with the same rule (`choose`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ccd.errors import RunError

if TYPE_CHECKING:
    from ccctl.client import Client
    from ccd.store import Reader

LAST = "@last"
WHOLE = re.compile(r".+-\d{8}-\d{6}-[0-9a-f]{4}")  # as runs.new_run_id makes them
SHOWN = 10  # candidates named in an ambiguity error


def choose(ref: str, found: list[str], where: str) -> str:
    """The one run `ref` names among `found`, the ids starting with it (all ids for `@last`),
    newest first, at most SHOWN + 1; RunError naming the candidates if not exactly one."""
    if ref == LAST:
        if not found:
            raise RunError(f"no runs yet {where}, so no {LAST}")
        return found[0]
    if ref in found:  # a whole id, even if it starts another one
        return ref
    if not found:
        raise RunError(f"no run {ref!r} {where} (`ccctl list` shows them)")
    if len(found) > 1:
        more = ", ..." if len(found) > SHOWN else ""
        raise RunError(f"{ref!r} is the start of more than one run {where}: "
                       f"{', '.join(found[:SHOWN])}{more}; give more of the id")
    return found[0]


def on_daemon(client: Client, ref: str) -> str:
    """The id `ref` names among the daemon's runs. A whole run id is taken as it is,
    without asking: `status --watch` must start while the daemon restarts."""
    if WHOLE.fullmatch(ref):
        return ref
    params: dict[str, object] = {"limit": SHOWN + 1}
    if ref != LAST:
        params["prefix"] = ref
    found = [r["run"] for r in client.json("GET", "/api/v1/runs", params=params)]
    return choose(ref, found, "on the daemon")


def in_store(store: Reader, ref: str, where: str) -> str:
    """The id `ref` names among the runs of a state directory."""
    rows = store.runs(limit=SHOWN + 1, prefix=None if ref == LAST else ref)
    return choose(ref, [row.id for row in rows], where)
