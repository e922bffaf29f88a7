"""The OpenAPI document is generated from the shapes the handlers send, and it matches the
app: every route is documented, every documented operation is a route."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from starlette.routing import Route

from ccd import api, shapes
from ccd.model import SAFE_NAME, JobState
from ccd.openapi import document
from ccd.service import Service


def app_routes(state_dir: Path) -> set[tuple[str, str]]:
    async def build() -> set[tuple[str, str]]:
        async with Service(state_dir) as service:
            guard, _ = api.build(service, "token")
            routes = guard.app.routes  # type: ignore[attr-defined]
            return {(re.sub(r"\{(\w+):\w+\}", r"{\1}", r.path), method.lower())
                    for r in routes if isinstance(r, Route)
                    for method in r.methods or () if method != "HEAD"}

    return asyncio.run(build())


def test_every_route_is_documented_and_every_operation_is_a_route(tmp_path: Path) -> None:
    documented = {(path, method) for path, ops in document()["paths"].items() for method in ops}
    assert app_routes(tmp_path / "state") == documented


def test_the_schemas_are_the_shapes_and_name_the_states_once() -> None:
    schemas = document()["components"]["schemas"]
    assert {t.__name__ for t in shapes.SCHEMAS} <= set(schemas)
    assert sorted(schemas["JobState"]["enum"]) == sorted(s.value for s in JobState)
    assert schemas["Workflow"]["properties"]["name"]["pattern"] == f"^{SAFE_NAME.pattern}$"
    event = schemas["Event"]["properties"]
    assert {"pid", "tstart", "tend", "attempt", "exit_code", "message"} <= set(event)

