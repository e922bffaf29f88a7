"""The API module in process (starlette's app through httpx's ASGI transport, a real Service
on a temporary state directory): how errors become answers."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import httpx
import pytest

from ccd import api
from ccd.service import Service


def test_a_bug_is_one_json_500_and_one_log_record_with_its_traceback(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> httpx.Response:
        async with Service(tmp_path / "state") as service:
            def broken() -> None:
                raise RuntimeError("a bug in listing workflows")

            service.workflows = broken  # type: ignore[method-assign,assignment]
            app, _ = api.build(service, "token")
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1",
                                         headers={"Authorization": "Bearer token"}) as client:
                return await client.get("/api/v1/workflows")

    with caplog.at_level(logging.ERROR, logger="ccd.api"):
        response = asyncio.run(scenario())
    assert response.status_code == 500
    assert response.json() == {"error": "internal error (RuntimeError); the daemon's log has "
                                        "the details"}
    (record,) = [r for r in caplog.records if r.name == "ccd.api"]
    assert record.getMessage() == "GET /api/v1/workflows failed" and record.exc_info
    from ccd.daemon import _JsonLines

    line = _JsonLines().format(record)
    assert "\n" not in line and "a bug in listing workflows" in json.loads(line)["exception"]
