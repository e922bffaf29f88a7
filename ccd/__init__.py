"""ccd: an asyncio workflow orchestrator for computational analytics (after cloudmesh-cc).

    from ccd import Workflow, Job
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ccd.workflow import Job, Workflow

__all__ = ["Job", "Workflow"]


def __getattr__(name: str) -> Any:
    # Lazy: `ccctl` imports ccd.* submodules and must not pay for the API's imports.
    if name in __all__:
        from ccd import workflow

        return getattr(workflow, name)
    raise AttributeError(f"module 'ccd' has no attribute {name!r}")
