"""ccctl: the command line of ccd, and RESTWorkflow, the paper's Python client of the daemon."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ccctl.rest import RESTWorkflow

__all__ = ["RESTWorkflow"]


def __getattr__(name: str) -> Any:
    if name == "RESTWorkflow":
        from ccctl.rest import RESTWorkflow

        return RESTWorkflow
    raise AttributeError(f"module 'ccctl' has no attribute {name!r}")
